// Package runbooks holds the pages a person reads when an alert pages them,
// and the tests that keep those pages honest: every runbook_url an alert
// carries leads to a page, every page links only to files that exist, and
// every failoverd command a page shows is one the binary actually has.
package runbooks

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
)

// runbookBase is the runbook_url prefix the alert catalogue agreed on. A URL
// elsewhere would be a dead link in the page a person opens at 3 a.m.
const runbookBase = "https://github.com/failoverd/failoverd/blob/main/runbooks"

// catalogue is the agreed list of pages. It is a floor: alert rules and the
// chart add their own names, and those need pages too. Kept here so that a
// page deleted by mistake fails even before the rules that link to it exist.
var catalogue = []string{
	// validator-facing alerts (alerts/)
	"GethDown", "GethHeadStale", "GethPeersLow",
	"LighthouseBeaconDown", "LighthouseBeaconNotSynced", "LighthouseBeaconOptimistic",
	"LighthouseBeaconPeersLow", "LighthouseValidatorDown", "LighthouseMissedAttestations",
	"BeacondDown", "BeacondNotCatchingUp", "BerachainMissedBlocks",
	"ValidatorNodeNotReady", "ChainDataVolumeFilling", "NodeClockSkew", "Watchdog",
	// failoverd's own (the chart's PrometheusRule and the notifier)
	"FailoverdDown", "FailoverdWebhookRejected", "FailoverdWebhookStoreErrors",
	"FailoverdProviderErrors", "FailoverdReconcileErrors", "FailoverdSiteHeartbeatStale",
	"FailoverdStandbyBudget", "FailoverdStandbyReady", "FailoverdIncidentFailed",
}

// procedures are the pages for things a person does rather than alerts.
var procedures = []string{
	"approve-migration", "failback", "teardown", "standby-stuck-syncing",
	"cloud-quota-exhausted", "home-returns-after-migration", "site-outage",
}

// alertSections are the headings every alert page has, so that the reader
// finds the same thing in the same place on every page.
var alertSections = []string{
	"What it means", "Impact", "Confirm", "What to do", "Escalate to a migration", "Do not",
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found from the runbooks directory: %v", err)
	}
	return root
}

// pages returns the runbook pages by file name (README.md included).
func pages(t *testing.T) map[string]string {
	t.Helper()
	matches, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		out[m] = string(b)
	}
	if len(out) == 0 {
		t.Fatal("no runbook pages (*.md) in runbooks/")
	}
	return out
}

// source is a file that can carry runbook_urls, read if it exists.
type source struct {
	rel  string // path from the repository root, for messages
	text string
}

// sources lists the files under dir (relative to root) whose names match
// keep. A directory that does not exist yet yields nothing: the rules and the
// notifier are written at the same time as these pages.
func sources(t *testing.T, root, dir string, keep func(name string) bool) []source {
	t.Helper()
	var out []source
	err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fs.SkipDir
			}
			return err
		}
		if d.IsDir() {
			if d.Name() == "testdata" {
				// Fixtures may carry runbook URLs of made-up alerts.
				return fs.SkipDir
			}
			return nil
		}
		if !keep(d.Name()) {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, source{rel: filepath.ToSlash(rel), text: string(b)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func isYAML(name string) bool {
	return strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")
}

func isGoSource(name string) bool {
	return strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go")
}

// ref is one runbook reference found in a source.
type ref struct {
	where string // file:line
	page  string // file name inside runbooks/, e.g. GethDown.md
}

var (
	runbookURLLine = regexp.MustCompile(`runbook_url["']?\s*:\s*(.+)$`)
	// The chart writes {{ $runbooks }}/Name.md with the base from values.yaml.
	chartRunbook = regexp.MustCompile(`^\{\{-?\s*\$runbooks\s*-?\}\}/([A-Za-z0-9._-]+\.md)$`)
	goRunbook    = regexp.MustCompile(`runbooks/([A-Za-z0-9._-]+\.md)`)
)

// yamlRunbookRefs finds every runbook_url in rule files or chart templates.
// An absolute URL must start with runbookBase; the chart's template form is
// resolved against runbookBaseURL (checked separately). Anything else is a
// problem, reported rather than skipped.
func yamlRunbookRefs(s source) (refs []ref, problems []string) {
	for i, line := range strings.Split(s.text, "\n") {
		m := runbookURLLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		where := fmt.Sprintf("%s:%d", s.rel, i+1)
		v := strings.TrimSpace(m[1])
		v = strings.Trim(v, `"'`)
		if c := chartRunbook.FindStringSubmatch(v); c != nil {
			refs = append(refs, ref{where: where, page: c[1]})
			continue
		}
		if rest, ok := strings.CutPrefix(v, runbookBase+"/"); ok {
			rest, _, _ = strings.Cut(rest, "#")
			if strings.Contains(rest, "/") || !strings.HasSuffix(rest, ".md") {
				problems = append(problems, fmt.Sprintf("%s: runbook_url %q does not name a page directly inside runbooks/", where, v))
				continue
			}
			refs = append(refs, ref{where: where, page: rest})
			continue
		}
		problems = append(problems, fmt.Sprintf("%s: runbook_url %q is neither %s/<Name>.md nor the chart's {{ $runbooks }}/<Name>.md", where, v, runbookBase))
	}
	return refs, problems
}

func goRunbookRefs(s source) []ref {
	var refs []ref
	for i, line := range strings.Split(s.text, "\n") {
		for _, m := range goRunbook.FindAllStringSubmatch(line, -1) {
			refs = append(refs, ref{where: fmt.Sprintf("%s:%d", s.rel, i+1), page: m[1]})
		}
	}
	return refs
}

func TestRunbookURLsResolve(t *testing.T) {
	root := repoRoot(t)
	var refs []ref
	var problems []string
	var yamlSources []source
	// The chart renders its validator rules from a copy in rules/; a copy
	// that drifted would carry links the originals do not.
	for _, dir := range []string{"alerts", "charts/failoverd/templates", "charts/failoverd/rules"} {
		yamlSources = append(yamlSources, sources(t, root, dir, isYAML)...)
	}
	for _, s := range yamlSources {
		r, p := yamlRunbookRefs(s)
		refs = append(refs, r...)
		problems = append(problems, p...)
	}
	for _, dir := range []string{"failover", "cmd"} {
		for _, s := range sources(t, root, dir, isGoSource) {
			refs = append(refs, goRunbookRefs(s)...)
		}
	}
	for _, p := range problems {
		t.Error(p)
	}
	if len(refs) == 0 {
		t.Fatal("no runbook_url found in alerts/, charts/failoverd/templates/ or the Go sources: the search itself is broken")
	}
	for _, r := range refs {
		if _, err := os.Stat(r.page); err != nil {
			t.Errorf("%s: refers to runbooks/%s, which does not exist", r.where, r.page)
		}
	}
	t.Logf("%d runbook references checked", len(refs))
}

// The chart builds its runbook_urls from values.yaml; a base that points
// elsewhere would break every link the chart's alerts carry.
func TestChartRunbookBase(t *testing.T) {
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "charts/failoverd/values.yaml"))
	if errors.Is(err, fs.ErrNotExist) {
		t.Skip("no chart")
	}
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*runbookBaseURL:\s*(\S+)\s*$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("charts/failoverd/values.yaml has no prometheusRule.runbookBaseURL")
	}
	if got := strings.Trim(string(m[1]), `"'`); got != runbookBase {
		t.Errorf("runbookBaseURL is %q, want %q", got, runbookBase)
	}
}

var alertLine = regexp.MustCompile(`^\s*(?:-\s*)?alert:\s*["']?([A-Za-z_:][A-Za-z0-9_:]*)["']?\s*$`)

// alertNames lists every alerting rule defined in the sources.
func alertNames(ss []source) map[string]string {
	out := map[string]string{}
	for _, s := range ss {
		for i, line := range strings.Split(s.text, "\n") {
			if m := alertLine.FindStringSubmatch(line); m != nil {
				out[m[1]] = fmt.Sprintf("%s:%d", s.rel, i+1)
			}
		}
	}
	return out
}

func TestEveryAlertHasAPage(t *testing.T) {
	root := repoRoot(t)
	want := map[string]string{}
	for _, n := range catalogue {
		want[n] = "the agreed alert catalogue"
	}
	for _, dir := range []string{"alerts", "charts/failoverd/rules"} {
		for n, where := range alertNames(sources(t, root, dir, isYAML)) {
			want[n] = where
		}
	}
	chart := alertNames(sources(t, root, "charts/failoverd/templates", isYAML))
	if len(chart) == 0 {
		t.Error("no alert found in charts/failoverd/templates: the chart's PrometheusRule moved or the search is broken")
	}
	for n, where := range chart {
		want[n] = where
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range want {
			if !yield(n) {
				return
			}
		}
	})
	all := pages(t)
	for _, n := range names {
		text, ok := all[n+".md"]
		if !ok {
			t.Errorf("alert %s (%s) has no page runbooks/%s.md", n, want[n], n)
			continue
		}
		for _, sec := range missingSections(text) {
			t.Errorf("runbooks/%s.md has no section %q", n, sec)
		}
	}
	for _, p := range procedures {
		if _, ok := all[p+".md"]; !ok {
			t.Errorf("procedure page runbooks/%s.md is missing", p)
		}
	}
}

// missingSections lists the alertSections a page has no "## " heading for.
func missingSections(text string) []string {
	var headings []string
	for line := range strings.SplitSeq(text, "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			headings = append(headings, strings.TrimSpace(h))
		}
	}
	var missing []string
	for _, want := range alertSections {
		if !slices.ContainsFunc(headings, func(h string) bool { return strings.HasPrefix(h, want) }) {
			missing = append(missing, want)
		}
	}
	return missing
}

func TestIndexListsEveryPage(t *testing.T) {
	all := pages(t)
	index, ok := all["README.md"]
	if !ok {
		t.Fatal("runbooks/README.md (the index) is missing")
	}
	linked := map[string]bool{}
	for _, l := range markdownLinks(index) {
		target, _, _ := strings.Cut(l.target, "#")
		linked[path.Clean(target)] = true
	}
	for name := range all {
		if name != "README.md" && !linked[name] {
			t.Errorf("runbooks/README.md does not link %s", name)
		}
	}
}

// link is one markdown link outside code.
type link struct {
	line   int
	target string
}

var (
	inlineLink    = regexp.MustCompile(`!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	referenceLink = regexp.MustCompile(`^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$`)
	inlineCode    = regexp.MustCompile("`[^`]*`")
)

// markdownLinks returns the link targets of a page, skipping fenced code
// blocks and inline code, where brackets are code rather than links.
func markdownLinks(text string) []link {
	var out []link
	fence := ""
	for i, line := range strings.Split(text, "\n") {
		if f := fenceMarker(line); f != "" {
			if fence == "" {
				fence = f
			} else if strings.HasPrefix(strings.TrimSpace(line), fence) {
				fence = ""
			}
			continue
		}
		if fence != "" {
			continue
		}
		if m := referenceLink.FindStringSubmatch(line); m != nil {
			out = append(out, link{line: i + 1, target: m[1]})
			continue
		}
		line = inlineCode.ReplaceAllString(line, "")
		for _, m := range inlineLink.FindAllStringSubmatch(line, -1) {
			out = append(out, link{line: i + 1, target: m[1]})
		}
	}
	return out
}

// fenceMarker returns the ``` or ~~~ run that opens or closes a fence.
func fenceMarker(line string) string {
	s := strings.TrimLeft(line, " ")
	if len(line)-len(s) > 3 {
		return ""
	}
	for _, c := range []string{"`", "~"} {
		n := len(s) - len(strings.TrimLeft(s, c))
		if n >= 3 {
			return strings.Repeat(c, n)
		}
	}
	return ""
}

func isExternal(target string) bool {
	for _, p := range []string{"http://", "https://", "mailto:"} {
		if strings.HasPrefix(target, p) {
			return true
		}
	}
	return false
}

func TestRelativeLinksResolve(t *testing.T) {
	root := repoRoot(t)
	all := pages(t)
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range all {
			if !yield(n) {
				return
			}
		}
	})
	anchors := map[string]map[string]bool{}
	for _, name := range names {
		for _, l := range markdownLinks(all[name]) {
			if isExternal(l.target) {
				continue
			}
			file, frag, _ := strings.Cut(l.target, "#")
			target := name // a bare #fragment points into the page itself
			if file != "" {
				target = filepath.Join(".", filepath.FromSlash(file))
			}
			abs, err := filepath.Abs(target)
			if err != nil {
				t.Fatal(err)
			}
			if rel, err := filepath.Rel(root, abs); err != nil || strings.HasPrefix(rel, "..") {
				t.Errorf("%s:%d: link %q leaves the repository", name, l.line, l.target)
				continue
			}
			if _, err := os.Stat(abs); err != nil {
				t.Errorf("%s:%d: link %q: %s does not exist", name, l.line, l.target, target)
				continue
			}
			if frag == "" || !strings.HasSuffix(abs, ".md") {
				continue
			}
			if anchors[abs] == nil {
				b, err := os.ReadFile(abs)
				if err != nil {
					t.Fatal(err)
				}
				anchors[abs] = headingAnchors(string(b))
			}
			if !anchors[abs][frag] {
				t.Errorf("%s:%d: link %q: %s has no heading with anchor #%s", name, l.line, l.target, target, frag)
			}
		}
	}
}

// headingAnchors returns the anchors GitHub gives a page's headings:
// lower case, punctuation dropped, spaces to hyphens, repeats numbered.
func headingAnchors(text string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	fence := ""
	for line := range strings.SplitSeq(text, "\n") {
		if f := fenceMarker(line); f != "" {
			if fence == "" {
				fence = f
			} else if strings.HasPrefix(strings.TrimSpace(line), fence) {
				fence = ""
			}
			continue
		}
		if fence != "" || !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(h) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r):
				b.WriteRune(r)
			}
		}
		a := b.String()
		if n := seen[a]; n > 0 {
			out[fmt.Sprintf("%s-%d", a, n)] = true
		} else {
			out[a] = true
		}
		seen[a]++
	}
	return out
}

// command is one failoverd invocation shown in a page.
type command struct {
	page string
	line int
	args []string // the words after "failoverd"
	text string
}

// wrappers run the next word as a command; their own options are skipped.
// Shell keywords that precede a command count too (… | while read -r id; do failoverd …).
var wrappers = map[string]bool{
	"sudo": true, "watch": true, "time": true, "env": true, "exec": true, "nohup": true, "command": true,
	"do": true, "then": true, "else": true, "if": true, "while": true, "until": true, "!": true,
}

var envAssign = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// isFailoverd says whether a shell word runs the failoverd binary:
// failoverd on PATH, or a path to it (./failoverd, bin/failoverd, /usr/local/bin/failoverd).
// kubectl's deploy/failoverd or svc/failoverd are resource names, not the binary.
func isFailoverd(w string) bool {
	if w == "failoverd" {
		return true
	}
	if !strings.HasSuffix(w, "/failoverd") {
		return false
	}
	for _, p := range []string{"/", "./", "../", "~/", "bin/", "$HOME/"} {
		if strings.HasPrefix(w, p) {
			return true
		}
	}
	return false
}

var segmentSplit = regexp.MustCompile("\\|\\||&&|[|;`()]|\\$\\(")

// commandsIn finds failoverd commands in a page's fenced code blocks: at the
// start of a shell segment (after variable assignments and wrappers like
// sudo or watch), or after "--" (kubectl exec POD -- failoverd ...).
func commandsIn(page, text string) []command {
	var out []command
	fence := ""
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if f := fenceMarker(line); f != "" {
			if fence == "" {
				fence = f
			} else if strings.HasPrefix(strings.TrimSpace(line), fence) {
				fence = ""
			}
			continue
		}
		if fence == "" {
			continue
		}
		start := i
		for strings.HasSuffix(strings.TrimRight(line, " "), `\`) && i+1 < len(lines) {
			i++
			line = strings.TrimSuffix(strings.TrimRight(line, " "), `\`) + " " + lines[i]
		}
		line = stripComment(line)
		for _, seg := range segmentSplit.Split(line, -1) {
			words := strings.Fields(seg)
			for j := 0; j < len(words); j++ {
				if !isFailoverd(words[j]) || !commandPosition(words[:j]) {
					continue
				}
				out = append(out, command{page: page, line: start + 1, args: words[j+1:], text: strings.TrimSpace(seg)})
				break
			}
		}
	}
	return out
}

// commandPosition says whether the word after before is a command name.
func commandPosition(before []string) bool {
	if len(before) > 0 && before[len(before)-1] == "--" {
		return true
	}
	k := 0
	for k < len(before) && envAssign.MatchString(before[k]) {
		k++
	}
	for k < len(before) && wrappers[before[k]] {
		k++
		for k < len(before) && strings.HasPrefix(before[k], "-") {
			// watch -n 30: the option's value is a number.
			if k+1 < len(before) && strings.Trim(before[k+1], "0123456789.") == "" {
				k++
			}
			k++
		}
	}
	return k == len(before)
}

// stripComment drops a shell comment: a # at the start of a word, outside quotes.
func stripComment(line string) string {
	var quote rune
	prev := ' '
	for i, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote = r
		case r == '#' && (prev == ' ' || prev == '\t'):
			return line[:i]
		}
		prev = r
	}
	if strings.HasPrefix(strings.TrimSpace(line), "#") {
		return ""
	}
	return line
}

func TestCommandsIn(t *testing.T) {
	page := "```sh\n" +
		"failoverd incidents list --open\n" +
		"export FAILOVERD_API_TOKEN=$(kubectl -n failoverd get secret failoverd-api-token -o jsonpath='{.data.token}' | base64 -d)\n" +
		"kubectl -n failoverd exec deploy/failoverd -- failoverd sites   # from inside the pod\n" +
		"FAILOVERD_SERVER=http://10.0.0.5:9097 bin/failoverd teardown \"$ID\" \\\n" +
		"    --by alice\n" +
		"watch -n 30 failoverd incidents show \"$ID\"\n" +
		"# failoverd commented-out\n" +
		"curl -s localhost:9097/metrics | grep failoverd_ && sudo failoverd version\n" +
		"jq -r '.incidents[].id' | while read -r id; do failoverd teardown \"$id\" --by me; done\n" +
		"```\n" +
		"failoverd outside a fence\n" +
		"```yaml\n" +
		"image: ghcr.io/x/failoverd\n" +
		"```\n"
	got := commandsIn("p.md", page)
	var lines []string
	for _, c := range got {
		lines = append(lines, fmt.Sprintf("%d:%s", c.line, strings.Join(c.args, " ")))
	}
	want := []string{
		"2:incidents list --open",
		"4:sites",
		"5:teardown \"$ID\" --by alice",
		"7:incidents show \"$ID\"",
		"9:version",
		"10:teardown \"$id\" --by me",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("commandsIn:\n got %q\nwant %q", lines, want)
	}
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// failoverdBin is $FAILOVERD_BIN, or the binary built once from ./cmd/failoverd.
func failoverdBin(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("FAILOVERD_BIN"); b != "" {
		return b
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "runbooks-failoverd-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "failoverd")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", builtBin, "./cmd/failoverd")
		cmd.Dir = repoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/failoverd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		_ = os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}

// helpResult is what `failoverd <words> --help` said.
type helpResult struct {
	ok       bool     // exit 0
	usage    []string // the lines of the Usage: section
	hasSubs  bool     // it lists Available Commands
	combined string
}

type helper struct {
	bin   string
	cache map[string]helpResult
}

func (h *helper) help(words []string) helpResult {
	key := strings.Join(words, " ")
	if r, ok := h.cache[key]; ok {
		return r
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.bin, append(slices.Clone(words), "--help")...)
	// No FAILOVERD_* from the caller's environment: --help must not depend on it.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	r := helpResult{ok: err == nil, combined: out.String()}
	inUsage := false
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "Usage:":
			inUsage = true
		case inUsage && strings.TrimSpace(line) == "":
			inUsage = false
		case inUsage:
			r.usage = append(r.usage, strings.TrimSpace(line))
		}
		if strings.TrimSpace(line) == "Available Commands:" {
			r.hasSubs = true
		}
	}
	h.cache[key] = r
	return r
}

// resolves says whether `failoverd <words> --help` exited 0 and described
// exactly that command. cobra shows the nearest command's help for words it
// does not know (the root's for an unknown first word), so exit 0 alone
// proves nothing; the usage line names the command that answered.
func (h *helper) resolves(words []string) bool {
	r := h.help(words)
	if !r.ok {
		return false
	}
	path := strings.Join(append([]string{"failoverd"}, words...), " ")
	for _, u := range r.usage {
		if u == path || strings.HasPrefix(u, path+" ") {
			return true
		}
	}
	return false
}

// check resolves a command's subcommand words and says what is wrong, if anything.
func (h *helper) check(args []string) error {
	var words []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			break
		}
		next := append(slices.Clone(words), a)
		if !h.resolves(next) {
			break
		}
		words = next
	}
	var stopped string
	if len(words) < len(args) {
		stopped = args[len(words)]
	}
	switch {
	case len(words) == 0 && stopped != "" && !strings.HasPrefix(stopped, "-"):
		r := h.help([]string{stopped})
		return fmt.Errorf("failoverd has no command %q (`failoverd %s --help`: exit ok=%v, usage %q)", stopped, stopped, r.ok, r.usage)
	case stopped != "" && !strings.HasPrefix(stopped, "-") && h.help(words).hasSubs:
		// A command group takes no arguments: the word is a subcommand it lacks.
		return fmt.Errorf("`failoverd %s` has no subcommand %q", strings.Join(words, " "), stopped)
	}
	if r := h.help(words); !r.ok {
		return fmt.Errorf("`failoverd %s --help` failed:\n%s", strings.Join(words, " "), r.combined)
	}
	return nil
}

func TestFailoverdCommandsExist(t *testing.T) {
	all := pages(t)
	var cmds []command
	for name, text := range all {
		cmds = append(cmds, commandsIn(name, text)...)
	}
	sort.Slice(cmds, func(i, j int) bool {
		if cmds[i].page != cmds[j].page {
			return cmds[i].page < cmds[j].page
		}
		return cmds[i].line < cmds[j].line
	})
	if len(cmds) == 0 {
		t.Fatal("no failoverd command found in any runbook: the extraction is broken")
	}
	h := &helper{bin: failoverdBin(t), cache: map[string]helpResult{}}
	// A broken binary would make every command look missing; say that once.
	if r := h.help(nil); !r.ok {
		t.Fatalf("%s --help fails:\n%s", h.bin, r.combined)
	}
	for _, c := range cmds {
		if err := h.check(c.args); err != nil {
			t.Errorf("%s:%d: %s\n    %v", c.page, c.line, c.text, err)
		}
	}
	t.Logf("%d failoverd commands checked in %d pages", len(cmds), len(all))
}

// The checker itself must be able to say no: an unknown command, an unknown
// subcommand and a word that only looks like a subcommand.
func TestCheckerRefuses(t *testing.T) {
	h := &helper{bin: failoverdBin(t), cache: map[string]helpResult{}}
	for _, args := range [][]string{
		{"no-such-command", "x"},
		{"incidents", "shwo", "eth-1-1"},
		{"bootstrap", "rendr", "--validator", "x"},
	} {
		if err := h.check(args); err == nil {
			t.Errorf("failoverd %s: accepted, want refused", strings.Join(args, " "))
		}
	}
	for _, args := range [][]string{
		{"incidents", "show", "eth-1-1", "-o", "json"},
		{"teardown", "$ID", "--by", "alice"},
		{"--help"},
	} {
		if err := h.check(args); err != nil {
			t.Errorf("failoverd %s: %v", strings.Join(args, " "), err)
		}
	}
}
