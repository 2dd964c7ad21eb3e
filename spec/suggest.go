package spec

import (
	"strings"
	"unicode/utf8"
)

// Suggest returns the candidate closest to name when it is close enough to
// be a plausible typo of it, else "". Comparison ignores case, so a
// candidate that equals name but for case is always returned (spelt as in
// candidates): "net_admin" suggests "NET_ADMIN".
//
// Closeness is the optimal-string-alignment distance (Levenshtein plus
// transposition of adjacent characters, the commonest typing slip). A
// candidate is plausible when at most a third of the characters of name
// need editing: enough for "net.ipv4.ip_local_range" to find
// "net.ipv4.ip_local_port_range", too little for "SYS_TIM" to be taken
// for "SYS_NICE" (but "SYS_TIM" does find "SYS_TIME"). Ties go to the candidate sharing the longest prefix with name,
// then to the first in candidates, so the answer does not depend on map
// iteration order upstream.
//
// Suggest is for error paths: it costs O(len(candidates) * len(name)^2).
func Suggest(name string, candidates []string) string {
	if name == "" || len(candidates) == 0 {
		return ""
	}
	in := []rune(strings.ToLower(name))
	limit := max(len(in), 3) / 3

	best, bestDist, bestPrefix := "", limit+1, -1
	var row0, row1, row2 []int
	for _, c := range candidates {
		if c == "" {
			continue
		}
		// The length difference is a lower bound on the distance: skip
		// hopeless candidates before allocating anything for them.
		n := utf8.RuneCountInString(c)
		if d := n - len(in); d > limit || -d > limit {
			continue
		}
		cr := []rune(strings.ToLower(c))
		var d int
		d, row0, row1, row2 = osaDistance(in, cr, bestDist, row0, row1, row2)
		// Sharing no character with the candidate is not a typo, however
		// short the name.
		if d > limit || (d > 0 && d >= max(len(in), len(cr))) {
			continue
		}
		p := commonPrefix(in, cr)
		if d < bestDist || (d == bestDist && p > bestPrefix) {
			best, bestDist, bestPrefix = c, d, p
		}
	}
	return best
}

// osaDistance computes the optimal-string-alignment distance between a and
// b. It gives up early, returning a value > bound, once every cell of a row
// exceeds bound: the distance can only grow from there. The three row
// buffers are reused across calls to keep a scan over many candidates from
// allocating per candidate.
func osaDistance(a, b []rune, bound int, r0, r1, r2 []int) (int, []int, []int, []int) {
	n := len(b) + 1
	if cap(r0) < n {
		r0, r1, r2 = make([]int, n), make([]int, n), make([]int, n)
	}
	prev2, prev, cur := r0[:n], r1[:n], r2[:n]
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			v := min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				v = min(v, prev2[j-2]+1)
			}
			cur[j] = v
			rowMin = min(rowMin, v)
		}
		if rowMin > bound {
			return bound + 1, r0, r1, r2
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)], r0, r1, r2
}

func commonPrefix(a, b []rune) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}
