package provider

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"

	"golang.org/x/crypto/bcrypt"
)

// secretHashPrefix marks a client secret stored under mandate's keyed hash.
const secretHashPrefix = "$mandate-hmac-sha256$"

// SecretHasher hashes and checks client secrets. It implements fosite.Hasher.
//
// Secrets that mandate generates ([GenerateSecret]) carry 256 bits of entropy, so a fast keyed
// hash (HMAC-SHA-256 under a key derived from [Config.Secret]) is as strong as a slow one for
// them, and a database dump alone is not enough to test guesses. Hashes in bcrypt format
// ("$2a$", "$2b$", "$2y$"), imported from elsewhere, still verify — at bcrypt's cost.
type SecretHasher struct {
	key []byte
}

// NewSecretHasher returns a hasher keyed with key (at least 32 bytes).
func NewSecretHasher(key []byte) (*SecretHasher, error) {
	if len(key) < 32 {
		return nil, errors.New("provider: secret hasher key must be at least 32 bytes")
	}
	return &SecretHasher{key: bytes.Clone(key)}, nil
}

// Hash implements fosite.Hasher.
func (h *SecretHasher) Hash(_ context.Context, secret []byte) ([]byte, error) {
	m := hmac.New(sha256.New, h.key)
	m.Write(secret)
	out := make([]byte, 0, len(secretHashPrefix)+44)
	out = append(out, secretHashPrefix...)
	return base64.RawStdEncoding.AppendEncode(out, m.Sum(nil)), nil
}

// Compare implements fosite.Hasher. It runs in constant time for the keyed hash.
func (h *SecretHasher) Compare(ctx context.Context, hash, secret []byte) error {
	switch {
	case bytes.HasPrefix(hash, []byte(secretHashPrefix)):
		want, _ := h.Hash(ctx, secret)
		if subtle.ConstantTimeCompare(want, hash) != 1 {
			return errors.New("provider: client secret mismatch")
		}
		return nil
	case bytes.HasPrefix(hash, []byte("$2a$")), bytes.HasPrefix(hash, []byte("$2b$")), bytes.HasPrefix(hash, []byte("$2y$")):
		if err := bcrypt.CompareHashAndPassword(hash, secret); err != nil {
			return fmt.Errorf("provider: client secret mismatch: %w", err)
		}
		return nil
	default:
		return errors.New("provider: client secret hash has an unknown format")
	}
}

// GenerateSecret returns a new client secret with 256 bits of entropy, base64url-encoded.
func GenerateSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("provider: generate secret: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
