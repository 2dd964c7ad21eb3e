// Package profiles ships secrun's built-in policy presets. They are files,
// not Go literals, so an admin reads in one place exactly what `baseline`
// or `restricted` means, and `secrunctl policy show` prints the same bytes.
package profiles

import "embed"

// Policies holds policies/<name>.yaml, one preset each.
//
//go:embed policies/*.yaml
var Policies embed.FS
