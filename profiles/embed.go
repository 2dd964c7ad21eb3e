// Package profiles ships secrun's built-in policy presets. They are files,
// not Go literals, so an admin reads in one place exactly what `baseline`
// or `restricted` means, and `secrunctl policy show` prints the same bytes.
package profiles

import "embed"

//go:generate go run ./genjson

// Policies holds policies/<name>.yaml, one preset each, and the same
// document as policies/<name>.json (generated), which the wrapper reads.
//
//go:embed policies/*.yaml policies/*.json
var Policies embed.FS
