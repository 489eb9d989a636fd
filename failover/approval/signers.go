package approval

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// AllowedSigner is one approver key: the principal (the person) and the key.
type AllowedSigner struct {
	Principal string
	Key       ssh.PublicKey
	// Namespaces, when not empty, are the namespace patterns the key may
	// sign for (OpenSSH namespaces="..." option).
	Namespaces []string
	// ValidAfter / ValidBefore, when not zero, bound when the key is accepted
	// (OpenSSH valid-after= / valid-before= options).
	ValidAfter, ValidBefore time.Time
}

// AllowedSigners is the approver list from config. A principal may have several
// keys; a key belongs to exactly one principal. Threshold counts principals.
type AllowedSigners []AllowedSigner

// Principals returns the distinct principals, in order of first appearance.
func (s AllowedSigners) Principals() []string {
	var out []string
	seen := map[string]bool{}
	for _, a := range s {
		if !seen[a.Principal] {
			seen[a.Principal] = true
			out = append(out, a.Principal)
		}
	}
	return out
}

// lookup finds the entry for key.
func (s AllowedSigners) lookup(key ssh.PublicKey) (AllowedSigner, bool) {
	m := key.Marshal()
	for _, a := range s {
		if bytes.Equal(a.Key.Marshal(), m) {
			return a, true
		}
	}
	return AllowedSigner{}, false
}

// acceptsAt reports why the entry cannot sign for namespace at now ("" if it can).
func (a AllowedSigner) refusesAt(namespace string, now time.Time) string {
	if len(a.Namespaces) > 0 {
		ok := false
		for _, p := range a.Namespaces {
			neg := strings.HasPrefix(p, "!")
			m, _ := path.Match(strings.TrimPrefix(p, "!"), namespace)
			if m && neg {
				ok = false
				break
			}
			ok = ok || m
		}
		if !ok {
			return fmt.Sprintf("key of %s is not allowed to sign namespace %q (namespaces=%q)", a.Principal, namespace, strings.Join(a.Namespaces, ","))
		}
	}
	if !a.ValidAfter.IsZero() && now.Before(a.ValidAfter) {
		return fmt.Sprintf("key of %s is not valid before %s", a.Principal, a.ValidAfter.UTC().Format(time.RFC3339))
	}
	if !a.ValidBefore.IsZero() && !now.Before(a.ValidBefore) {
		return fmt.Sprintf("key of %s is not valid since %s", a.Principal, a.ValidBefore.UTC().Format(time.RFC3339))
	}
	return ""
}

// ParseAllowedSigners parses config lines in OpenSSH allowed_signers style
// (ssh-keygen(1) "ALLOWED SIGNERS"):
//
//	alice@example ssh-ed25519 AAAA... [comment]
//	bob@example namespaces="failoverd-approval",valid-before="20270101Z" ecdsa-sha2-nistp256 AAAA...
//
// Blank lines and lines starting with '#' are skipped; a value may hold several
// lines. Differences from OpenSSH, all refused with an error rather than
// silently accepted: one principal per line (no comma lists, no wildcards, no
// quoting), no cert-authority (certificates are not accepted), no unknown
// options, a key may appear only once. Accepted key types are ed25519,
// ecdsa-sha2-nistp256/384/521, their sk- (FIDO) variants and rsa >= 2048 bits.
func ParseAllowedSigners(lines []string) (AllowedSigners, error) {
	var out AllowedSigners
	seen := map[string]string{}
	n := 0
	for _, chunk := range lines {
		for _, raw := range strings.Split(chunk, "\n") {
			n++
			line := strings.TrimSpace(raw)
			if line == "" || line[0] == '#' {
				continue
			}
			s, err := parseSignerLine(line)
			if err != nil {
				return nil, fmt.Errorf("approval: allowed signers line %d: %w", n, err)
			}
			k := string(s.Key.Marshal())
			if prev, dup := seen[k]; dup {
				return nil, fmt.Errorf("approval: allowed signers line %d: key %s is already listed for %s; a key belongs to one approver", n, ssh.FingerprintSHA256(s.Key), prev)
			}
			seen[k] = s.Principal
			out = append(out, s)
		}
	}
	return out, nil
}

func parseSignerLine(line string) (AllowedSigner, error) {
	var s AllowedSigner
	i := strings.IndexAny(line, " \t")
	if i < 0 {
		return s, errors.New("want: principal [options] keytype base64-key [comment]")
	}
	s.Principal, line = line[:i], strings.TrimSpace(line[i:])
	if strings.ContainsAny(s.Principal, ",*?!\"") {
		return s, fmt.Errorf("principal %q: one plain principal per line (no lists, patterns or quotes)", s.Principal)
	}
	if err := checkToken("principal", s.Principal, maxFieldLen); err != nil {
		return s, errors.New(err.(*RefusalError).Message)
	}
	key, _, opts, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return s, fmt.Errorf("key: %w", err)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return s, errors.New("trailing data after key")
	}
	if _, isCert := key.(*ssh.Certificate); isCert {
		return s, errors.New("certificates are not accepted; list the approver's plain public key")
	}
	if err := checkKeyType(key); err != nil {
		return s, err
	}
	s.Key = key
	for _, o := range opts {
		name, val, hasVal := strings.Cut(o, "=")
		name = strings.ToLower(name)
		if hasVal {
			if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
				val = val[1 : len(val)-1]
			}
		}
		switch {
		case name == "namespaces" && hasVal:
			for _, p := range strings.Split(val, ",") {
				if p = strings.TrimSpace(p); p != "" {
					if _, err := path.Match(strings.TrimPrefix(p, "!"), ""); err != nil {
						return s, fmt.Errorf("namespaces pattern %q: %w", p, err)
					}
					s.Namespaces = append(s.Namespaces, p)
				}
			}
			if len(s.Namespaces) == 0 {
				return s, errors.New("empty namespaces option")
			}
		case name == "valid-after" && hasVal:
			if s.ValidAfter, err = parseSignerTime(val); err != nil {
				return s, fmt.Errorf("valid-after: %w", err)
			}
		case name == "valid-before" && hasVal:
			if s.ValidBefore, err = parseSignerTime(val); err != nil {
				return s, fmt.Errorf("valid-before: %w", err)
			}
		case name == "cert-authority":
			return s, errors.New("cert-authority is not supported; list each approver's own key")
		default:
			return s, fmt.Errorf("unknown option %q", o)
		}
	}
	return s, nil
}

// parseSignerTime parses YYYYMMDD[HHMM[SS]][Z] as ssh-keygen does: UTC with a
// trailing Z, local time otherwise.
func parseSignerTime(v string) (time.Time, error) {
	loc := time.Local
	if u, ok := strings.CutSuffix(v, "Z"); ok {
		v, loc = u, time.UTC
	}
	var layout string
	switch len(v) {
	case 8:
		layout = "20060102"
	case 12:
		layout = "200601021504"
	case 14:
		layout = "20060102150405"
	default:
		return time.Time{}, fmt.Errorf("%q: want YYYYMMDD[HHMM[SS]][Z]", v)
	}
	return time.ParseInLocation(layout, v, loc)
}
