package simulation

// knownBugs are engine bugs the simulation found and reported, that the
// engine still has. A run that meets one counts it instead of failing, so
// that the sweep keeps looking for new ones; each has a test (skipped while
// the bug is there) that fails once more when the bug is gone, as a reminder
// to drop it from this list. The counters "known engine bug hit: NAME" and
// "seeds meeting known engine bug: NAME" say how often.
var knownBugs = map[string]string{}

// knownBug reports whether a failure is the known bug name (and counts it).
func (w *world) knownBug(name string, matches bool) bool {
	if !matches || w.strict {
		return false
	}
	if _, ok := knownBugs[name]; !ok {
		return false
	}
	w.stats.add("known engine bug hit: "+name, 1)
	w.note("  known engine bug %s: %s", name, knownBugs[name])
	return true
}
