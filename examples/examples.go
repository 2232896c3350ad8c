// Package examples embeds the example workflows, so the local stack can
// offer them in the dashboard's picker.
package examples

import (
	"embed"
	"io/fs"
	"sort"
	"strings"
)

//go:embed *.json
var files embed.FS

// FS holds the example workflow files.
var FS fs.FS = files

// Names lists the example files, sorted.
func Names() []string {
	entries, _ := fs.ReadDir(files, ".")
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".json") {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}
