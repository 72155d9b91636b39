// The room-name rule, the one place it is defined.

package natter

import "fmt"

// MaxRoomLen is the longest room name allowed.
const MaxRoomLen = 64

// ValidRoom reports whether name is a valid room name: 1 to 64 characters
// of ASCII letters, digits, '_' and '-', starting with a letter or digit.
//
// The rule keeps NATS token separators and wildcards ('.', '*', '>'),
// whitespace, Redis glob characters and anything non-ASCII out of the
// subjects and channels built from room names.
func ValidRoom(name string) bool {
	if len(name) == 0 || len(name) > MaxRoomLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// CheckRoom returns nil for a valid room name and an error wrapping
// ErrInvalidRoom that says why otherwise.
func CheckRoom(name string) error {
	if ValidRoom(name) {
		return nil
	}
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidRoom)
	case len(name) > MaxRoomLen:
		return fmt.Errorf("%w: longer than %d characters", ErrInvalidRoom, MaxRoomLen)
	default:
		return fmt.Errorf("%w: use 1-%d of A-Z a-z 0-9 _ -, starting with a letter or digit", ErrInvalidRoom, MaxRoomLen)
	}
}

// CheckUser returns an error unless name is a valid user name. User names
// follow the room rule: they appear in presence lists and logs.
func CheckUser(name string) error {
	if ValidRoom(name) {
		return nil
	}
	return fmt.Errorf("invalid user name: use 1-%d of A-Z a-z 0-9 _ -, starting with a letter or digit", MaxRoomLen)
}
