package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Decompression limits. A compressed batch is untrusted input that may be a
// decompression bomb, so every decompression is bounded. Validate and Records
// allow DecompressRatio times the batch size, at least MinDecompressLimit and
// at most MaxDecompressLimit (see DecompressLimit). Most producer batches
// compress 2-10x, but log lines are repetitive: JSON lines padded with
// spaces compress 100-200x with zstd (a 64x ratio refused whole batches of
// them). Kafka validates as it decompresses and has no bound. Validate
// streams too (validateCompressed), so the ratio bounds the work a small
// request can make rather than memory; Records, which reads batches the
// log holds, decompresses them whole. A batch over the limit is rejected
// as corrupt with Cause ErrDecompressLimit.
const (
	DecompressRatio    = 512
	MinDecompressLimit = 1 << 20
	MaxDecompressLimit = 256 << 20
)

// DecompressLimit is the largest decompressed size Validate and Records
// accept for a batch of batchSize bytes.
func DecompressLimit(batchSize int) int {
	if batchSize > MaxDecompressLimit/DecompressRatio {
		return MaxDecompressLimit
	}
	return max(batchSize*DecompressRatio, MinDecompressLimit)
}

// Decompress decompresses src, compressed with codec c, into a new slice
// owned by the caller. CodecNone returns src itself. The result may not
// exceed limit bytes. Errors are *CorruptionError: ErrUnsupportedCodec for
// an unknown codec, ErrCorrupt for undecodable input (with the codec's error
// as Cause) and ErrCorrupt with Cause ErrDecompressLimit when the output
// would exceed limit.
//
// Snappy input may be a raw snappy block or the xerial framing that the Java
// client writes. LZ4 input is the LZ4 frame format.
func Decompress(c Codec, src []byte, limit int) ([]byte, error) {
	if c == CodecNone {
		return src, nil
	}
	buf := getBuf()
	defer putBuf(buf)
	out, err := decompressAppend(c, (*buf)[:0], src, limit)
	if out != nil {
		*buf = out[:0] // keep whatever the codec grew
	}
	if err != nil {
		return nil, err
	}
	return bytes.Clone(out), nil
}

// decompressAppend decompresses src into dst[:0]'s backing array (growing
// it as needed) and returns the output. On error the returned slice may be
// non-nil, so that the caller can keep a grown buffer.
func decompressAppend(c Codec, dst, src []byte, limit int) ([]byte, error) {
	var (
		out []byte
		err error
	)
	switch c {
	case CodecNone:
		if len(src) > limit {
			return dst, limitError(c, limit)
		}
		return append(dst, src...), nil
	case CodecGzip:
		out, err = decompressGzip(dst, src, limit)
	case CodecSnappy:
		out, err = decompressSnappy(dst, src, limit)
	case CodecLZ4:
		out, err = decompressLZ4(dst, src, limit)
	case CodecZstd:
		out, err = decompressZstd(dst, src, limit)
	default:
		return dst, &CorruptionError{Reason: fmt.Sprintf("compression codec %d", int8(c)), Err: ErrUnsupportedCodec}
	}
	if err == nil {
		return out, nil
	}
	if errors.Is(err, ErrDecompressLimit) {
		return out, limitError(c, limit)
	}
	return out, &CorruptionError{Reason: c.String() + " decompression", Err: ErrCorrupt, Cause: err}
}

func limitError(c Codec, limit int) error {
	return &CorruptionError{
		Reason: fmt.Sprintf("%s batch decompresses to more than %d bytes", c, limit),
		Err:    ErrCorrupt,
		Cause:  ErrDecompressLimit,
	}
}

// Output buffers for decompression, reused across batches. Buffers that grew
// past maxPooledBuf are dropped rather than pinned in the pool.
const maxPooledBuf = 8 << 20

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > maxPooledBuf {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// readLimited reads r to EOF, appending to dst, and fails with
// ErrDecompressLimit once more than limit bytes have been produced. The
// buffer grows geometrically but never beyond limit+1 bytes.
func readLimited(dst []byte, r io.Reader, limit int) ([]byte, error) {
	start := len(dst)
	for {
		if len(dst) == cap(dst) {
			produced := len(dst) - start
			if produced > limit {
				return dst, ErrDecompressLimit
			}
			// Room for limit+1 bytes at most: one byte past the limit
			// tells an over-limit stream from one ending exactly at it.
			grow := min(max(cap(dst), 32<<10), limit+1-produced)
			dst = append(dst, make([]byte, grow)...)[:len(dst)]
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if len(dst)-start > limit {
			return dst, ErrDecompressLimit
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// gzip

type gzipReader struct {
	src bytes.Reader
	zr  gzip.Reader
}

var gzipReaders sync.Pool // of *gzipReader

func decompressGzip(dst, src []byte, limit int) ([]byte, error) {
	gr, _ := gzipReaders.Get().(*gzipReader)
	if gr == nil {
		gr = new(gzipReader)
	}
	defer gzipReaders.Put(gr)
	gr.src.Reset(src)
	if err := gr.zr.Reset(&gr.src); err != nil {
		return dst, err
	}
	out, err := readLimited(dst, &gr.zr, limit)
	gr.src.Reset(nil)
	return out, err
}

// gzipWriters are pools of writers by level: [0] for the default level
// (-1), [n] for level n (1-9).
var gzipWriters [10]sync.Pool

func gzipWriter(level int) (*gzip.Writer, *sync.Pool) {
	i := 0
	if level >= gzip.BestSpeed && level <= gzip.BestCompression {
		i = level
	} else {
		level = gzip.DefaultCompression
	}
	pool := &gzipWriters[i]
	if w, ok := pool.Get().(*gzip.Writer); ok {
		return w, pool
	}
	w, _ := gzip.NewWriterLevel(nil, level) // valid by construction
	return w, pool
}

// appendWriter is an io.Writer appending to a slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// snappy

// xerialMagic starts the xerial snappy-java stream framing: the magic, then
// a big-endian version and minimum compatible version (8 bytes), then blocks
// of a big-endian int32 length and a raw snappy block.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

const xerialHeaderLen = 16

func decompressSnappy(dst, src []byte, limit int) ([]byte, error) {
	if len(src) >= xerialHeaderLen && bytes.HasPrefix(src, xerialMagic) {
		return decompressXerial(dst, src[xerialHeaderLen:], limit)
	}
	return appendSnappyBlock(dst, src, limit)
}

// appendSnappyBlock decodes one raw snappy block, appending to dst. The
// decoded length is in the block's preamble and is checked before anything
// is allocated. Decoding is strict snappy (not the s2 superset), so that a
// batch we accept is one every Kafka client can read.
func appendSnappyBlock(dst, block []byte, limit int) ([]byte, error) {
	n, err := snappy.DecodedLen(block)
	if err != nil {
		return dst, err
	}
	if n > limit-len(dst) || n < 0 {
		return dst, ErrDecompressLimit
	}
	if cap(dst)-len(dst) < n {
		dst = append(dst, make([]byte, n)...)[:len(dst)]
	}
	out, err := snappy.DecodeStrict(dst[len(dst):cap(dst)], block)
	if err != nil {
		return dst, err
	}
	return dst[:len(dst)+len(out)], nil
}

var errXerialFraming = errors.New("malformed xerial snappy framing")

func decompressXerial(dst, src []byte, limit int) ([]byte, error) {
	limit += len(dst) // appendSnappyBlock bounds the total length of dst
	for len(src) > 0 {
		if len(src) < 4 {
			return dst, errXerialFraming
		}
		n := binary.BigEndian.Uint32(src)
		src = src[4:]
		if uint64(n) > uint64(len(src)) {
			return dst, errXerialFraming
		}
		var err error
		if dst, err = appendSnappyBlock(dst, src[:n], limit); err != nil {
			return dst, err
		}
		src = src[n:]
	}
	return dst, nil
}

// lz4

type lz4Reader struct {
	src bytes.Reader
	zr  *lz4.Reader
}

var lz4Readers sync.Pool // of *lz4Reader

func newLZ4Reader() *lz4Reader { return &lz4Reader{zr: lz4.NewReader(nil)} }

func decompressLZ4(dst, src []byte, limit int) ([]byte, error) {
	lr, _ := lz4Readers.Get().(*lz4Reader)
	if lr == nil {
		lr = newLZ4Reader()
	}
	defer lz4Readers.Put(lr)
	lr.src.Reset(src)
	lr.zr.Reset(&lr.src)
	out, err := readLimited(dst, lr.zr, limit)
	lr.src.Reset(nil)
	return out, err
}

// lz4Writers are pools of writers by level: [0] for the fast compressor,
// [n] for the high-compression level n (1-9).
var lz4Writers [10]sync.Pool

// lz4Writer returns a writer for Kafka's compression.lz4.level: the fast
// compressor at the default level (9), as Kafka's Java code does, and the
// high-compression one at any other level; pierrec/lz4 goes up to 9, so
// levels 10-17 compress as 9 does.
func lz4Writer(level int) (*lz4.Writer, *sync.Pool) {
	i := 0
	if level != DefaultLevel && level != 9 {
		i = min(max(level, 1), 9)
	}
	pool := &lz4Writers[i]
	if w, ok := pool.Get().(*lz4.Writer); ok {
		return w, pool
	}
	w := lz4.NewWriter(nil)
	lvl := lz4.Fast
	if i > 0 {
		lvl = lz4.Level1 << (i - 1)
	}
	// Kafka's Java client writes 64 KiB blocks; smaller blocks also keep the
	// readers' buffers small. Errors only come from invalid options.
	_ = w.Apply(lz4.BlockSizeOption(lz4.Block64Kb), lz4.ConcurrencyOption(1), lz4.CompressionLevelOption(lvl))
	return w, pool
}

// zstd

// zstdDecoder wraps a synchronous decoder (concurrency 1: it starts no
// goroutines, so the pool may drop it without Close) with the bound it is
// currently configured for.
type zstdDecoder struct {
	dec   *zstd.Decoder
	bound uint64
}

var zstdDecoders sync.Pool // of *zstdDecoder

// decompressZstd decodes with DecodeAll, which writes straight into dst.
// The decoder's memory bound (checked against a frame's declared size before
// allocating and against the output after every block of at most 128 KiB)
// also caps the window size a frame may declare, although DecodeAll needs no
// separate window buffer. Streaming producers (the Java client) declare a
// window of 2-8 MiB, more than the limit of a small batch, so the bound is
// raised to the first frame's window when that is larger, up to
// MaxDecompressLimit, and the output is checked against limit afterwards.
func decompressZstd(dst, src []byte, limit int) (out []byte, err error) {
	bound := uint64(limit)
	var fh zstd.Header
	if err := fh.Decode(src); err == nil && fh.WindowSize > bound {
		bound = min(fh.WindowSize, MaxDecompressLimit)
	}
	zd, _ := zstdDecoders.Get().(*zstdDecoder)
	if zd == nil {
		dec, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxMemory(bound),
		)
		if err != nil {
			return dst, fmt.Errorf("new zstd decoder: %w", err)
		}
		zd = &zstdDecoder{dec: dec, bound: bound}
	}
	start := len(dst)
	defer func() {
		// A decoder keeps a reference to the output it last wrote (its
		// history): pooled after a large one, it would pin it.
		if len(out)-start <= maxPooledBuf {
			zstdDecoders.Put(zd)
		}
	}()
	if zd.bound != bound {
		if err := zd.dec.ResetWithOptions(nil, zstd.WithDecoderMaxMemory(bound)); err != nil {
			return dst, fmt.Errorf("reset zstd decoder: %w", err)
		}
		zd.bound = bound
	}
	out, err = zd.dec.DecodeAll(src, dst)
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
		return out, ErrDecompressLimit
	}
	if err == nil && len(out)-start > limit {
		return out, ErrDecompressLimit
	}
	return out, err
}

// The zstd encoders, one per klauspost/compress speed, are shared:
// EncodeAll is safe for concurrent use.
var zstdEncoders [zstd.SpeedBestCompression + 1]func() (*zstd.Encoder, error)

func init() {
	for l := zstd.SpeedFastest; l <= zstd.SpeedBestCompression; l++ {
		zstdEncoders[l] = sync.OnceValues(func() (*zstd.Encoder, error) {
			return zstd.NewWriter(nil, zstd.WithZeroFrames(true), zstd.WithEncoderLevel(l))
		})
	}
}

// DefaultLevel asks CompressLevel for the codec's default level (0 is no
// codec's level in Kafka's configs but zstd's, where it means the default
// too).
const DefaultLevel = 0

// Compress appends src compressed with codec c to dst, at the codec's
// default level, and returns the result; see CompressLevel.
func Compress(c Codec, dst, src []byte) ([]byte, error) {
	return CompressLevel(c, DefaultLevel, dst, src)
}

// CompressLevel appends src compressed with codec c at level to dst and
// returns the result. Levels are those of Kafka's
// compression.<codec>.level topic configs (KIP-390): gzip 1-9 (-1, the
// default, is klauspost/compress's default, its level 5, where Java's
// zlib takes 6); lz4 1-17 (9, the default, is the fast compressor, any
// other the high-compression one, levels above 9 as 9); zstd -131072 to 22
// (3 is the default, as is 0), mapped to the nearest of klauspost/compress's four
// speeds (below 3 fastest, 3-5 default, 6-9 better, 10 and up best).
// Snappy has no levels. Snappy output is a raw snappy block (readable by
// every Kafka client); LZ4 output is an LZ4 frame with 64 KiB blocks.
// CodecNone appends src unchanged. The only error is ErrUnsupportedCodec
// for an unknown codec.
func CompressLevel(c Codec, level int, dst, src []byte) ([]byte, error) {
	switch c {
	case CodecNone:
		return append(dst, src...), nil
	case CodecGzip:
		w, pool := gzipWriter(level)
		defer pool.Put(w)
		aw := appendWriter{b: dst}
		w.Reset(&aw)
		if _, err := w.Write(src); err != nil {
			return dst, fmt.Errorf("gzip compress: %w", err)
		}
		if err := w.Close(); err != nil {
			return dst, fmt.Errorf("gzip compress: %w", err)
		}
		w.Reset(nil)
		return aw.b, nil
	case CodecSnappy:
		n := len(dst)
		dst = append(dst, make([]byte, s2.MaxEncodedLen(len(src)))...)
		out := s2.EncodeSnappy(dst[n:], src)
		return dst[:n+len(out)], nil
	case CodecLZ4:
		w, pool := lz4Writer(level)
		defer pool.Put(w)
		aw := appendWriter{b: dst}
		w.Reset(&aw)
		if _, err := w.Write(src); err != nil {
			return dst, fmt.Errorf("lz4 compress: %w", err)
		}
		if err := w.Close(); err != nil {
			return dst, fmt.Errorf("lz4 compress: %w", err)
		}
		w.Reset(nil)
		return aw.b, nil
	case CodecZstd:
		speed := zstd.SpeedDefault
		if level != DefaultLevel {
			speed = zstd.EncoderLevelFromZstd(level)
		}
		enc, err := zstdEncoders[speed]()
		if err != nil {
			return dst, fmt.Errorf("zstd compress: %w", err)
		}
		return enc.EncodeAll(src, dst), nil
	}
	return dst, &CorruptionError{Reason: fmt.Sprintf("compression codec %d", int8(c)), Err: ErrUnsupportedCodec}
}

// Recompress returns a copy of batch, a valid v2 batch with header h,
// whose records section is compressed with codec c instead (CodecNone
// stores it uncompressed): the header is the same but for the length, the
// codec bits of the attributes and the CRC. It is how a topic's
// compression.type other than "producer" is applied, at level (see
// CompressLevel). The records are not re-encoded; a control batch is
// returned as it is.
func Recompress(batch []byte, h Header, c Codec, level int) ([]byte, Header, error) {
	if h.Codec() == c || h.Control() {
		return batch, h, nil
	}
	raw, err := Decompress(h.Codec(), batch[HeaderSize:], DecompressLimit(len(batch)))
	if err != nil {
		return nil, h, err
	}
	out := make([]byte, HeaderSize, HeaderSize+len(raw)/2)
	copy(out, batch[:HeaderSize])
	if out, err = CompressLevel(c, level, out, raw); err != nil {
		return nil, h, err
	}
	h.Attributes = h.Attributes&^0x07 | int16(c)
	h.Length = int32(len(out) - LogOverhead)
	binary.BigEndian.PutUint32(out[offLength:], uint32(h.Length))
	binary.BigEndian.PutUint16(out[offAttributes:], uint16(h.Attributes))
	h.CRC = crc32.Checksum(out[offAttributes:], castagnoli)
	binary.BigEndian.PutUint32(out[offCRC:], h.CRC)
	return out, h, nil
}
