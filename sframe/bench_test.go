package sframe

import "testing"

// BenchmarkEncryptDecrypt encrypts and decrypts one 60-byte frame, the size
// of a 20 ms Opus voice frame.
func BenchmarkEncryptDecrypt(b *testing.B) {
	for _, s := range []Suite{AES_128_CTR_HMAC_SHA256_80, AES_128_GCM_SHA256_128} {
		b.Run(s.String(), func(b *testing.B) {
			c := newTestContext(b, s, 1)
			frame := make([]byte, 60)
			metadata := make([]byte, 12) // an RTP header
			ctBuf := make([]byte, 0, 128)
			ptBuf := make([]byte, 0, 128)
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			var ctr uint64
			for b.Loop() {
				ct, err := c.Encrypt(ctBuf[:0], 1, ctr, metadata, frame)
				if err != nil {
					b.Fatal(err)
				}
				if _, _, _, err := c.Decrypt(ptBuf[:0], metadata, ct); err != nil {
					b.Fatal(err)
				}
				ctr++
			}
		})
	}
}
