package lab

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWriteReportMakesDir: a report goes to a folder that does not exist
// yet rather than failing after the whole run.
func TestWriteReportMakesDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "report")
	res := []Result{{Profile: "clean", Tier: tierTunnel, Connected: true, FramesPlayedPct: 99.5}}
	if err := WriteReport(dir, ReportInfo{Date: time.Now(), CallDuration: 15 * time.Second, Runs: 1}, res); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"lab-report.md", "lab-report.json", "lab-report.svg"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
}
