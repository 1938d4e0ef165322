package agent

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
)

// fingerprintBytes is how much of a file's head identifies its content.
// Two files whose first fingerprintBytes bytes are equal are taken to be
// copies of one another (that is how a copytruncate rotation's copy is
// recognised); a shorter fingerprint only confirms that an inode still
// holds the file it held before.
const fingerprintBytes = 1024

// fingerprint is the SHA-256 of a file's first n bytes, n <=
// fingerprintBytes. The zero value (n == 0) matches any file.
type fingerprint struct {
	n   int
	sum [sha256.Size]byte
}

// full reports whether the fingerprint covers fingerprintBytes bytes.
func (fp fingerprint) full() bool { return fp.n == fingerprintBytes }

// readFingerprint fingerprints the first min(size, fingerprintBytes) bytes
// of r.
func readFingerprint(r io.ReaderAt, size int64) (fingerprint, error) {
	n := int64(fingerprintBytes)
	if size < n {
		n = size
	}
	if n <= 0 {
		return fingerprint{}, nil
	}
	buf := make([]byte, n)
	got, err := r.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return fingerprint{}, fmt.Errorf("read fingerprint: %w", err)
	}
	buf = buf[:got]
	return fingerprint{n: len(buf), sum: sha256.Sum256(buf)}, nil
}

// checkFingerprint tells whether r (of the given size) still starts with
// the bytes fp was taken from, and returns the fingerprint of r's current
// head (which may be longer than fp when the file grew).
func checkFingerprint(r io.ReaderAt, size int64, fp fingerprint) (same bool, now fingerprint, err error) {
	if size < int64(fp.n) {
		now, err = readFingerprint(r, size)
		return false, now, err
	}
	n := int64(fingerprintBytes)
	if size < n {
		n = size
	}
	buf := make([]byte, n)
	got, err := r.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, fingerprint{}, fmt.Errorf("read fingerprint: %w", err)
	}
	buf = buf[:got]
	if got < fp.n {
		return false, fingerprint{n: got, sum: sha256.Sum256(buf)}, nil
	}
	same = fp.n == 0 || sha256.Sum256(buf[:fp.n]) == fp.sum
	return same, fingerprint{n: got, sum: sha256.Sum256(buf)}, nil
}
