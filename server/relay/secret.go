package relay

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1" // the TURN REST API scheme's MAC; HMAC-SHA1 is still sound as a MAC
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// SecretFile is the name of the secret's file in the data folder.
const SecretFile = "turn-secret"

// LoadSecret returns the relay's shared secret from dir/SecretFile,
// creating the file (mode 0600) with 32 random bytes in hex when it does
// not exist. The secret is the file's text, trimmed: the same string
// works as coturn's static-auth-secret.
func LoadSecret(dir string) ([]byte, error) {
	path := filepath.Join(dir, SecretFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		var raw [32]byte
		rand.Read(raw[:])
		secret := hex.EncodeToString(raw[:])
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) { // made meanwhile by another process
			return LoadSecret(dir)
		}
		if err != nil {
			return nil, fmt.Errorf("relay: secret: %w", err)
		}
		_, err = f.WriteString(secret + "\n")
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
			return nil, fmt.Errorf("relay: secret: %w", err)
		}
		return []byte(secret), nil
	}
	if err != nil {
		return nil, fmt.Errorf("relay: secret: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("relay: secret %s is readable by others (mode %v): chmod 600 it", path, fi.Mode().Perm())
	}
	secret := strings.TrimSpace(string(b))
	if len(secret) < 16 {
		return nil, fmt.Errorf("relay: secret %s is shorter than 16 characters", path)
	}
	return []byte(secret), nil
}

// Password is the TURN REST API password of username:
// base64(HMAC-SHA1(secret, username)).
func Password(secret []byte, username string) string {
	mac := hmac.New(sha1.New, secret)
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
