package call

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Ogg Opus files: Ogg pages (RFC 3533) carrying one Opus stream (RFC 7845).
//
// A page is
//
//	"OggS"            capture pattern
//	version     u8    0
//	flags       u8    0x01 continues a packet, 0x02 first page, 0x04 last page
//	granule     u64le 48 kHz samples up to the end of the last packet ending here
//	serial      u32le the logical stream
//	sequence    u32le page number in the stream
//	checksum    u32le CRC-32 (poly 0x04c11db7, not reflected) of the page with this field zero
//	segments    u8    number of lacing values
//	lacing      [segments]u8
//	payload     sum(lacing) bytes
//
// A packet is the concatenation of consecutive segments up to and including
// the first lacing value below 255; a page may hold many packets (opusenc
// puts about a second of audio in each), and a packet may continue on the
// next page. The first packet of an Opus stream is the OpusHead header
// (RFC 7845 section 5.1), the second OpusTags (section 5.2), then audio.

const (
	pageHeaderLen = 27
	flagContinued = 0x01
	flagFirst     = 0x02
	flagLast      = 0x04
	// maxHeaderPacket bounds the OpusHead and OpusTags packets (tags may hold
	// cover art; we skip them, but must not buffer without limit).
	maxHeaderPacket = 1 << 20
	// maxAudioPacket is far above the largest Opus packet (RFC 6716 section
	// 3.4, R5: 1275 bytes a frame, 48 frames).
	maxAudioPacket = 64 << 10
)

var crcTable = func() *[256]uint32 {
	var t [256]uint32
	for i := range t {
		r := uint32(i) << 24
		for range 8 {
			if r&0x80000000 != 0 {
				r = r<<1 ^ 0x04c11db7
			} else {
				r <<= 1
			}
		}
		t[i] = r
	}
	return &t
}()

func oggCRC(crc uint32, b []byte) uint32 {
	for _, v := range b {
		crc = crc<<8 ^ crcTable[byte(crc>>24)^v]
	}
	return crc
}

// OggReader reads the Opus packets of an Ogg Opus stream, one at a time.
type OggReader struct {
	r        *bufio.Reader
	started  bool   // the first page has been read
	serial   uint32 // the stream we read: that of the first page
	channels int
	preSkip  int
	queue    [][]byte // complete packets of the current page, in order
	partial  []byte   // a packet that continues on the next page
	cont     bool     // partial is in progress
	last     bool     // the page with the end-of-stream flag has been read
	packets  int      // audio packets returned
}

// NewOggReader reads the headers of the Ogg Opus stream in r and returns a
// reader of its audio packets. Pages of other logical streams are skipped.
func NewOggReader(r io.Reader) (*OggReader, error) {
	o := &OggReader{r: bufio.NewReader(r)}
	head, err := o.next(maxHeaderPacket)
	if err != nil {
		return nil, headerError("OpusHead", err)
	}
	// RFC 7845 section 5.1: "OpusHead", version, channels, pre-skip u16le,
	// input rate u32le, gain s16le, mapping family, [mapping table].
	if len(head) < 19 || string(head[:8]) != "OpusHead" {
		return nil, fmt.Errorf("%w: the first packet is not an OpusHead header", ErrBadOgg)
	}
	if head[8]>>4 != 0 { // major version 0; minor versions are compatible
		return nil, fmt.Errorf("%w: Ogg Opus version %d", ErrBadOgg, head[8])
	}
	o.channels, o.preSkip = int(head[9]), int(binary.LittleEndian.Uint16(head[10:]))
	if o.channels == 0 {
		return nil, fmt.Errorf("%w: zero channels", ErrBadOgg)
	}
	if head[18] != 0 && o.channels > 2 {
		return nil, fmt.Errorf("%w: %d channels (mapping family %d); a call sends mono or stereo", ErrBadOgg, o.channels, head[18])
	}
	tags, err := o.next(maxHeaderPacket)
	if err != nil {
		return nil, headerError("OpusTags", err)
	}
	if len(tags) < 8 || string(tags[:8]) != "OpusTags" {
		return nil, fmt.Errorf("%w: the second packet is not an OpusTags header", ErrBadOgg)
	}
	return o, nil
}

// headerError says that the header packet name could not be read.
func headerError(name string, err error) error {
	if errors.Is(err, ErrBadOgg) {
		return err
	}
	return fmt.Errorf("%w: reading the %s header: %w", ErrBadOgg, name, noEOF(err))
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Channels returns the channel count of the stream's header.
func (o *OggReader) Channels() int { return o.channels }

// ReadPacket returns the next audio packet, checked to be a well-formed
// Opus packet, or io.EOF at the end of the stream.
func (o *OggReader) ReadPacket() ([]byte, error) {
	p, err := o.next(maxAudioPacket)
	if err != nil {
		if err == io.EOF && o.cont {
			return nil, fmt.Errorf("%w: the stream ends inside a packet", ErrBadOgg)
		}
		return nil, err
	}
	o.packets++
	if _, err := packetSamples(p); err != nil {
		return nil, fmt.Errorf("audio packet %d: %w", o.packets, err)
	}
	return p, nil
}

// next returns the next packet of the stream, of at most limit bytes.
func (o *OggReader) next(limit int) ([]byte, error) {
	for len(o.queue) == 0 {
		if o.last {
			return nil, io.EOF
		}
		if err := o.readPage(limit); err != nil {
			return nil, err
		}
	}
	p := o.queue[0]
	o.queue = o.queue[1:]
	return p, nil
}

// readPage reads pages until one of our stream and splits it into packets.
func (o *OggReader) readPage(limit int) error {
	for {
		var h [pageHeaderLen]byte
		if _, err := io.ReadFull(o.r, h[:]); err != nil {
			if err == io.ErrUnexpectedEOF {
				return fmt.Errorf("%w: truncated page header", ErrBadOgg)
			}
			return err // io.EOF between pages: the file ends
		}
		if string(h[:4]) != "OggS" {
			return fmt.Errorf("%w: no Ogg page here (the data starts %q)", ErrBadOgg, h[:4])
		}
		if h[4] != 0 {
			return fmt.Errorf("%w: Ogg version %d", ErrBadOgg, h[4])
		}
		flags := h[5]
		serial := binary.LittleEndian.Uint32(h[14:])
		lacing := make([]byte, h[26])
		if _, err := io.ReadFull(o.r, lacing); err != nil {
			return fmt.Errorf("%w: truncated page: %w", ErrBadOgg, noEOF(err))
		}
		size := 0
		for _, l := range lacing {
			size += int(l)
		}
		payload := make([]byte, size)
		if _, err := io.ReadFull(o.r, payload); err != nil {
			return fmt.Errorf("%w: truncated page: %w", ErrBadOgg, noEOF(err))
		}
		want := binary.LittleEndian.Uint32(h[22:])
		clear(h[22:26])
		if crc := oggCRC(oggCRC(oggCRC(0, h[:]), lacing), payload); crc != want {
			return fmt.Errorf("%w: page checksum mismatch", ErrBadOgg)
		}
		if !o.started {
			if flags&flagFirst == 0 {
				return fmt.Errorf("%w: the stream does not start with a first page", ErrBadOgg)
			}
			o.serial, o.started = serial, true
		} else if serial != o.serial {
			continue // another logical stream
		}
		if flags&flagContinued == 0 && o.cont {
			return fmt.Errorf("%w: a packet continues on a page not marked as its continuation", ErrBadOgg)
		}
		if flags&flagContinued != 0 && !o.cont {
			return fmt.Errorf("%w: a page continues a packet that did not start", ErrBadOgg)
		}
		off := 0
		for _, l := range lacing {
			if len(o.partial)+int(l) > limit {
				return fmt.Errorf("%w: a packet of over %d bytes", ErrBadOgg, limit)
			}
			o.partial = append(o.partial, payload[off:off+int(l)]...)
			off += int(l)
			o.cont = true
			if l < 255 {
				o.queue = append(o.queue, o.partial)
				o.partial, o.cont = nil, false
			}
		}
		if flags&flagLast != 0 {
			o.last = true
			if o.cont {
				return fmt.Errorf("%w: the stream ends inside a packet", ErrBadOgg)
			}
		}
		return nil
	}
}

// OggWriter writes Opus packets as an Ogg Opus stream.
type OggWriter struct {
	w       io.Writer
	serial  uint32
	seq     uint32
	granule uint64   // samples up to the end of the last packet buffered
	held    [][]byte // packets of the page being filled
	err     error
}

// pagePackets is how many packets an OggWriter puts on one page: a second
// of 20 ms packets, as opusenc does.
const pagePackets = 50

// NewOggWriter writes the headers of an Ogg Opus stream with the given
// channel count to w and returns a writer of its audio packets.
func NewOggWriter(w io.Writer, channels int) (*OggWriter, error) {
	var s [4]byte
	rand.Read(s[:])
	o := &OggWriter{w: w, serial: binary.LittleEndian.Uint32(s[:])}
	// RFC 7845 section 5.1. The pre-skip is 0: the audio starts wherever
	// the sender's stream started, and we do not know its encoder delay.
	head := make([]byte, 19)
	copy(head, "OpusHead")
	head[8] = 1 // version
	head[9] = byte(channels)
	binary.LittleEndian.PutUint32(head[12:], opusRate) // the input rate, informational
	if err := o.page(flagFirst, 0, [][]byte{head}); err != nil {
		return nil, err
	}
	const vendor = "parley"
	tags := make([]byte, 0, 8+4+len(vendor)+4)
	tags = append(tags, "OpusTags"...)
	tags = binary.LittleEndian.AppendUint32(tags, uint32(len(vendor)))
	tags = append(tags, vendor...)
	tags = binary.LittleEndian.AppendUint32(tags, 0) // no comments
	if err := o.page(0, 0, [][]byte{tags}); err != nil {
		return nil, err
	}
	return o, nil
}

// WritePacket adds the Opus packet p to the stream.
func (o *OggWriter) WritePacket(p []byte) error {
	if o.err != nil {
		return o.err
	}
	n, err := packetSamples(p)
	if err != nil {
		return err
	}
	if len(p) >= 255*255 { // one page holds at most 255 lacing values
		return fmt.Errorf("%w: a packet of %d bytes", ErrBadOpus, len(p))
	}
	if segments(o.held)+len(p)/255+1 > 255 {
		if err := o.flush(0); err != nil {
			return err
		}
	}
	o.held = append(o.held, bytes.Clone(p))
	o.granule += uint64(n)
	if len(o.held) >= pagePackets {
		return o.flush(0)
	}
	return nil
}

// Flush writes the packets buffered for the current page.
func (o *OggWriter) Flush() error {
	if o.err != nil || len(o.held) == 0 {
		return o.err
	}
	return o.flush(0)
}

// Close ends the stream with a page marked last. It does not close the
// underlying writer.
func (o *OggWriter) Close() error {
	if o.err != nil {
		return o.err
	}
	err := o.flush(flagLast)
	o.err = errors.New("OggWriter closed")
	return err
}

func (o *OggWriter) flush(flags byte) error {
	err := o.page(flags, o.granule, o.held)
	o.held = o.held[:0]
	return err
}

func segments(packets [][]byte) int {
	n := 0
	for _, p := range packets {
		n += len(p)/255 + 1
	}
	return n
}

// page writes one page holding the whole packets given.
func (o *OggWriter) page(flags byte, granule uint64, packets [][]byte) error {
	var lacing, payload []byte
	for _, p := range packets {
		for n := len(p); ; n -= 255 {
			if n < 255 {
				lacing = append(lacing, byte(n))
				break
			}
			lacing = append(lacing, 255)
		}
		payload = append(payload, p...)
	}
	page := make([]byte, pageHeaderLen, pageHeaderLen+len(lacing)+len(payload))
	copy(page, "OggS")
	page[5] = flags
	binary.LittleEndian.PutUint64(page[6:], granule)
	binary.LittleEndian.PutUint32(page[14:], o.serial)
	binary.LittleEndian.PutUint32(page[18:], o.seq)
	page[26] = byte(len(lacing))
	page = append(append(page, lacing...), payload...)
	binary.LittleEndian.PutUint32(page[22:], oggCRC(0, page))
	o.seq++
	if _, err := o.w.Write(page); err != nil {
		o.err = err
		return err
	}
	return nil
}
