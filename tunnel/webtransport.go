//go:build !js

// Browsers open WebTransport carriers with their own WebTransport API;
// this file is the native clients'.

package tunnel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/qlog"
	"github.com/quic-go/webtransport-go"
)

// Limits of a WebTransport carrier (client side).
const (
	wtInQueue   = 64                               // messages received and not yet taken by Recv; datagrams beyond it are dropped
	wtOutQueue  = 32                               // datagrams waiting to be sent; Send drops beyond it
	wtIdle      = 30 * time.Second                 // QUIC idle timeout
	wtMaxValid  = 14 * 24 * time.Hour              // the longest validity browsers accept for a pinned certificate
	wtWriteMax  = 2 * time.Second                  // a stream write without a deadline in its ctx
	wtCauseWait = 200 * time.Millisecond           // for the session's end, after the stream's
	wtCloseErr  = webtransport.SessionErrorCode(1) // the server's close with a reason (server/tunnel.WTCloseError)
)

var dialWebTransport = DialWebTransport

// DialWebTransport opens a WebTransport carrier at u (https://host:port
// and tunnel.Path) and sends Join; the server's Joined (or Error) is the
// first message Recv returns.
//
// With certHashes empty the server's certificate is checked as usual, by
// tlsConf's roots (nil: the system's). Otherwise it is checked as a
// browser checks serverCertificateHashes instead: the SHA-256 hash of the
// leaf certificate (its DER bytes) must be one of certHashes, and the
// certificate must be valid now and for at most 14 days; no CA and no
// name is consulted (InsecureSkipVerify with a VerifyPeerCertificate that
// does these checks, and no session resumption, which would skip them).
//
// The carrier sends Media and Ping as datagrams, dropping them when more
// than a few dozen wait; it sends Select both as a datagram (fast) and on
// the stream (sure to arrive), which the server takes as one. Recv merges
// the stream (Joined, Peer, Error) with the datagrams (Media, Pong),
// starting the datagrams only after the stream's first message, so that
// the Joined comes first.
func DialWebTransport(ctx context.Context, u string, tlsConf *tls.Config, certHashes [][]byte, room RoomID, ticket string) (Carrier, error) {
	if !strings.HasPrefix(u, "https://") {
		return nil, fmt.Errorf("tunnel: WebTransport URL %q is not https://", u)
	}
	if tlsConf == nil {
		tlsConf = &tls.Config{}
	} else {
		tlsConf = tlsConf.Clone()
	}
	tlsConf.NextProtos = []string{http3.NextProtoH3}
	if len(certHashes) > 0 {
		hashes := make([][]byte, len(certHashes))
		copy(hashes, certHashes)
		tlsConf.InsecureSkipVerify = true
		tlsConf.ClientSessionCache = nil
		tlsConf.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			return verifyCertHash(raw, hashes, time.Now())
		}
	}
	tr := &webtransport.Transport{
		TLSClientConfig: tlsConf,
		QUICConfig: &quic.Config{
			EnableDatagrams:                  true,
			EnableStreamResetPartialDelivery: true,
			Tracer:                           qlog.DefaultConnectionTracer, // with QLOGDIR set
			MaxIdleTimeout:                   wtIdle,
			KeepAlivePeriod:                  wtIdle / 3,
		},
	}
	rsp, sess, err := tr.Dial(ctx, u, nil)
	if err != nil {
		tr.Close()
		if rsp != nil {
			return nil, fmt.Errorf("tunnel: WebTransport to %s: status %d: %w", u, rsp.StatusCode, err)
		}
		return nil, fmt.Errorf("tunnel: WebTransport to %s: %w", u, err)
	}
	c := &wtCarrier{
		tr:      tr,
		sess:    sess,
		wtInbox: newWTInbox(),
		out:     make(Queue, wtOutQueue),
	}
	c.str, err = sess.OpenStreamSync(ctx)
	if err == nil {
		err = c.writeStream(ctx, AppendJoin(nil, room, ticket))
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("tunnel: joining over WebTransport: %w", err)
	}
	c.wg.Add(3)
	go c.readStream()
	go c.readDatagrams()
	go c.writeDatagrams()
	return c, nil
}

// verifyCertHash checks a server's certificate chain by the hash of its
// leaf, as browsers check serverCertificateHashes (W3C WebTransport,
// "verify a certificate hash").
func verifyCertHash(raw [][]byte, hashes [][]byte, now time.Time) error {
	if len(raw) == 0 {
		return errors.New("tunnel: the server sent no certificate")
	}
	sum := sha256.Sum256(raw[0])
	found := false
	for _, h := range hashes {
		found = found || bytes.Equal(h, sum[:])
	}
	if !found {
		return fmt.Errorf("tunnel: the server's certificate (SHA-256 %x) is not the one the ticket names", sum)
	}
	cert, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return fmt.Errorf("tunnel: the server's certificate: %w", err)
	}
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return fmt.Errorf("tunnel: the server's certificate is valid from %v to %v, not now", cert.NotBefore, cert.NotAfter)
	}
	if cert.NotAfter.Sub(cert.NotBefore) > wtMaxValid {
		return fmt.Errorf("tunnel: the server's certificate is valid for %v, over the %v browsers accept", cert.NotAfter.Sub(cert.NotBefore), wtMaxValid)
	}
	return nil
}

// wtCarrier is a WebTransport carrier: three goroutines, which Close ends,
// read the stream and the datagrams into in and send the datagrams of out.
type wtCarrier struct {
	tr   *webtransport.Transport
	sess *webtransport.Session
	str  *webtransport.Stream
	wmu  sync.Mutex // serialises writes on str

	wtInbox
	out  Queue
	once sync.Once
	wg   sync.WaitGroup
}

func (c *wtCarrier) Kind() string { return "webtransport" }

func (c *wtCarrier) Send(ctx context.Context, msg []byte) error {
	onStream, err := c.check(msg)
	if err != nil {
		return err
	}
	if onStream {
		if err := c.writeStream(ctx, msg); err != nil {
			return err
		}
	}
	c.out.Offer(msg) // when full, the path is slower than the media: drop, as a lossy network would
	return nil
}

// writeStream writes msg, length-prefixed, on the stream.
func (c *wtCarrier) writeStream(ctx context.Context, msg []byte) error {
	if len(msg) > MaxMessage {
		return fmt.Errorf("%w: %d bytes", ErrMalformed, len(msg))
	}
	b := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(msg)), uint16(len(msg)))
	b = append(b, msg...)
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(wtWriteMax)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.str.SetWriteDeadline(deadline)
	if _, err := c.str.Write(b); err != nil {
		return fmt.Errorf("tunnel: WebTransport stream: %w", err)
	}
	return nil
}

// readStream takes the server's stream messages until the stream ends;
// then the carrier is dead.
func (c *wtCarrier) readStream() {
	defer c.wg.Done()
	var err error
	sawError := false
	first := true
	defer func() {
		if first {
			close(c.joined)
		}
		// A server that closed the session for a reason it could not
		// deliver on the stream: deliver it as the Error it was.
		se, ok := errors.AsType[*webtransport.SessionError](err)
		if !ok && !errors.Is(err, io.EOF) {
			se = c.sessionError()
		}
		if se != nil && se.Remote && se.ErrorCode == wtCloseErr && !sawError {
			kind, text, _ := strings.Cut(se.Message, ":")
			c.deliver(AppendError(nil, kind, text))
		}
		switch {
		case errors.Is(err, io.EOF):
			c.err = fmt.Errorf("tunnel: the server ended the WebTransport carrier: %w", ErrClosed)
		default:
			c.err = fmt.Errorf("tunnel: WebTransport carrier: %w", err)
		}
		close(c.dead)
	}()
	var hdr [2]byte
	for {
		if _, err = io.ReadFull(c.str, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(hdr[:]))
		if n == 0 || n > MaxMessage {
			err = fmt.Errorf("%w: stream message of %d bytes", ErrMalformed, n)
			return
		}
		msg := make([]byte, n)
		if _, err = io.ReadFull(c.str, msg); err != nil {
			return
		}
		sawError = sawError || MsgType(msg[0]) == MsgError
		if !c.deliver(msg) {
			err = ErrClosed
			return
		}
		if first {
			first = false
			close(c.joined)
		}
	}
}

// sessionError returns why the session ended, when the stream saw only
// the end of the QUIC connection: webtransport-go closes the connection
// as soon as the server's close arrives, and a read on the stream may see
// that first.
func (c *wtCarrier) sessionError() *webtransport.SessionError {
	t := time.NewTimer(wtCauseWait)
	defer t.Stop()
	select {
	case <-c.sess.Context().Done():
	case <-t.C:
		return nil
	case <-c.done:
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.sess.AcceptStream(ctx) // a closed session's returns why it closed
	se, _ := errors.AsType[*webtransport.SessionError](err)
	return se
}

// readDatagrams takes the server's datagrams once the stream's first
// message is in, dropping those Recv has no room for.
func (c *wtCarrier) readDatagrams() {
	defer c.wg.Done()
	select {
	case <-c.joined:
	case <-c.done:
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := context.AfterFunc(c.sess.Context(), cancel)
	defer stop()
	go func() {
		select {
		case <-c.done:
		case <-c.dead:
		case <-ctx.Done():
		}
		cancel()
	}()
	for {
		msg, err := c.sess.ReceiveDatagram(ctx)
		if err != nil {
			return
		}
		select {
		case c.in <- msg:
		default:
		}
	}
}

// writeDatagrams sends the datagrams of out.
func (c *wtCarrier) writeDatagrams() {
	defer c.wg.Done()
	for {
		select {
		case q := <-c.out:
			if q.Stale(time.Now()) {
				continue
			}
			err := c.sess.SendDatagram(q.Msg)
			if _, ok := errors.AsType[*quic.DatagramTooLargeError](err); ok {
				continue
			}
			if err != nil {
				return
			}
		case <-c.done:
			return
		case <-c.dead:
			return
		}
	}
}

func (c *wtCarrier) Close() error {
	c.once.Do(func() {
		close(c.done)
		c.sess.CloseWithError(0, "")
		c.tr.Close()
		c.wg.Wait()
	})
	return nil
}
