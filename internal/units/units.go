// Package units writes quantities for people. It is the one byte-size
// format of the repository: engine/sampler (FormatBytes), engine/api's
// budget errors and the remask CLI all call Bytes.
package units

import "fmt"

// Bytes writes n bytes in binary units with one decimal: "512 B",
// "137.7 KiB", "1.5 GiB", up to EiB.
func Bytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	x, u := float64(n), 0
	for x >= 1024 && u < len(units)-1 {
		x /= 1024
		u++
	}
	if u == 0 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.1f %s", x, units[u])
}
