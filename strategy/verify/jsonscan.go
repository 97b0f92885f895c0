package verify

import (
	"bytes"
	"encoding/json"
	"errors"
)

// errJSONObject is returned by memberNames for input that is not a single JSON object.
var errJSONObject = errors.New("not a JSON object")

// memberNames appends the names of the top-level members of the JSON object in data to dst,
// unescaping names that contain escape sequences. It checks only the structure needed to find
// the names (strings, nesting, separators); the caller still decodes data with encoding/json,
// which rejects whatever else is invalid. For valid JSON the names found here are exactly the
// names encoding/json sees, so a duplicate cannot hide from this scan.
func memberNames(data []byte, dst [][]byte) ([][]byte, error) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return dst, errJSONObject
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		i++
	} else {
		for {
			if i >= len(data) || data[i] != '"' {
				return dst, errJSONObject
			}
			end, escaped, ok := scanString(data, i)
			if !ok {
				return dst, errJSONObject
			}
			name := data[i+1 : end-1]
			if escaped {
				var s string
				if err := json.Unmarshal(data[i:end], &s); err != nil {
					return dst, errJSONObject
				}
				name = []byte(s)
			}
			dst = append(dst, name)
			i = skipSpace(data, end)
			if i >= len(data) || data[i] != ':' {
				return dst, errJSONObject
			}
			i, ok = skipValue(data, skipSpace(data, i+1))
			if !ok {
				return dst, errJSONObject
			}
			i = skipSpace(data, i)
			if i >= len(data) {
				return dst, errJSONObject
			}
			if data[i] == ',' {
				i = skipSpace(data, i+1)
				continue
			}
			if data[i] != '}' {
				return dst, errJSONObject
			}
			i++
			break
		}
	}
	if skipSpace(data, i) != len(data) {
		return dst, errJSONObject
	}
	return dst, nil
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanString scans the string starting at data[i] == '"' and returns the index just after its
// closing quote and whether it contains escape sequences.
func scanString(data []byte, i int) (end int, escaped, ok bool) {
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			return j + 1, escaped, true
		}
	}
	return 0, false, false
}

// skipValue skips the value starting at data[i] and returns the index just after it (for
// literals and numbers: the index of the first separator after it).
func skipValue(data []byte, i int) (int, bool) {
	depth := 0
	for i < len(data) {
		switch data[i] {
		case '"':
			end, _, ok := scanString(data, i)
			if !ok {
				return 0, false
			}
			if depth == 0 {
				return end, true
			}
			i = end
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i, true
			}
			depth--
			if depth == 0 {
				return i + 1, true
			}
		case ',':
			if depth == 0 {
				return i, true
			}
		}
		i++
	}
	return 0, false
}

// duplicateName reports whether names holds the same name twice.
func duplicateName(names [][]byte) bool {
	if len(names) > 32 {
		seen := make(map[string]struct{}, len(names))
		for _, n := range names {
			if _, ok := seen[string(n)]; ok {
				return true
			}
			seen[string(n)] = struct{}{}
		}
		return false
	}
	for i := 1; i < len(names); i++ {
		for j := 0; j < i; j++ {
			if bytes.Equal(names[i], names[j]) {
				return true
			}
		}
	}
	return false
}
