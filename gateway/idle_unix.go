//go:build unix

package gateway

import "syscall"

const peekSupported = true

// peekWouldBlock asks the socket whether a read would block, without
// reading: a waiting byte, the end of the stream or an error all mean the
// reader has something to see.
func peekWouldBlock(fd uintptr) bool {
	var b [1]byte
	for {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return true
		}
		return false
	}
}
