package broker

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/gregor-log/gregor/broker/storage"
	"github.com/gregor-log/gregor/internal/vfs"
)

var osErrDeadline = os.ErrDeadlineExceeded

// sendPiece is how much of a chunk sendfile sends between extensions of
// the write deadline. When the deadline passes, a client that took bytes
// within the write timeout gets more time (see conn.stillReading): a
// client that keeps reading, however slowly, is not cut off in the middle
// of a large response, while one that stops is, after the write timeout.
const sendPiece = 1 << 20

// sendChunk writes a file region to the connection. On Linux with an OS
// file and a TCP connection it uses sendfile(2) with an explicit offset, so
// the bytes go from the page cache to the socket without entering user
// space and concurrent readers of one file do not share a file position;
// the write deadline is extended after every sendPiece bytes. Otherwise it
// copies through a buffer. Only bw's owner (see conn.inflight) calls it.
func (c *conn) sendChunk(ch *storage.Chunk) error {
	if ch.Size == 0 {
		return nil
	}
	if fder, ok := ch.File.(vfs.Fder); ok {
		if tc, ok := c.nc.(*net.TCPConn); ok {
			rc, err := tc.SyscallConn()
			if err != nil {
				return fmt.Errorf("sendfile: %w", err)
			}
			for pos, end := ch.Pos, ch.Pos+ch.Size; pos < end; pos += sendPiece {
				if pos > ch.Pos {
					c.armWrite()
				}
				if err := c.sendfile(rc, int(fder.Fd()), pos, min(sendPiece, end-pos)); err != nil {
					return err
				}
			}
			return nil
		}
	}
	n, err := io.Copy(connWriter{c}, io.NewSectionReader(ch.File, ch.Pos, ch.Size))
	if err != nil {
		return fmt.Errorf("copy chunk: %w", err)
	}
	if n != ch.Size {
		return fmt.Errorf("copy chunk: wrote %d of %d bytes: %w", n, ch.Size, io.ErrShortWrite)
	}
	return nil
}

// copyChunkMax is the largest chunk copied into the response buffer
// rather than sent with sendfile: a consumer at the end of a busy log
// fetches a few small batches at a time, and sending the response header,
// the records and the rest of the response in one write is one TCP
// segment instead of three, with one wakeup of the client, for a copy
// that costs less than the two system calls it saves.
const copyChunkMax = 16 << 10

// copyChunk reads a file region (at most copyChunkMax bytes) into bw.
func copyChunk(bw *bufio.Writer, ch *storage.Chunk) error {
	if int64(bw.Available()) < ch.Size {
		if err := bw.Flush(); err != nil {
			return err
		}
	}
	buf := bw.AvailableBuffer()[:ch.Size]
	n, err := ch.File.ReadAt(buf, ch.Pos)
	if int64(n) < ch.Size {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // chunks only cover written bytes
		}
		return fmt.Errorf("read chunk: %w", err)
	}
	_, err = bw.Write(buf)
	return err
}

// sendfile sends size bytes of infd from pos. When the write deadline
// passes while the client is still reading, it sets it again and goes on.
func (c *conn) sendfile(rc syscall.RawConn, infd int, pos, size int64) error {
	offset := pos
	remaining := size
	var opErr error
	for remaining > 0 && opErr == nil {
		werr := rc.Write(func(outfd uintptr) bool {
			for remaining > 0 {
				n, err := syscall.Sendfile(int(outfd), infd, &offset, int(min(remaining, 1<<30)))
				if n > 0 {
					remaining -= int64(n)
					c.progressed()
				}
				switch {
				case err == syscall.EAGAIN:
					return false // wait until writable
				case err == syscall.EINTR:
					continue
				case err != nil:
					opErr = err
					return true
				case n == 0:
					// The file is shorter than the chunk: never expected,
					// since chunks only cover written bytes.
					opErr = io.ErrUnexpectedEOF
					return true
				}
			}
			return true
		})
		if werr != nil {
			if errors.Is(werr, osErrDeadline) && opErr == nil && c.stillReading() {
				c.armWrite() // slow, not stalled
				continue
			}
			return fmt.Errorf("sendfile: %w", werr)
		}
	}
	if opErr != nil {
		return fmt.Errorf("sendfile: %w", opErr)
	}
	return nil
}
