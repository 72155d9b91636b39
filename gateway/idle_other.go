//go:build !unix

package gateway

const peekSupported = false

func peekWouldBlock(uintptr) bool { return false }
