package gormstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"time"

	"github.com/ory/fosite"
	"gorm.io/gorm"

	"github.com/mandate-dev/mandate/storage"
)

// Kinds of rows in mandate_tokens.
const (
	kindCode    = 1
	kindAccess  = 2
	kindRefresh = 3
	kindPKCE    = 4
	kindPAR     = 5
)

// requestRecord is the stored form of a fosite.Requester (and, for PAR, of the
// fosite.AuthorizeRequester fields).
type requestRecord struct {
	ID                string     `json:"id"`
	ClientID          string     `json:"client_id"`
	RequestedAt       time.Time  `json:"requested_at"`
	RequestedScope    []string   `json:"scopes,omitempty"`
	GrantedScope      []string   `json:"granted_scopes,omitempty"`
	RequestedAudience []string   `json:"audience,omitempty"`
	GrantedAudience   []string   `json:"granted_audience,omitempty"`
	Form              url.Values `json:"form,omitempty"`

	ResponseTypes        []string `json:"response_types,omitempty"`
	RedirectURI          string   `json:"redirect_uri,omitempty"`
	State                string   `json:"state,omitempty"`
	HandledResponseTypes []string `json:"handled_response_types,omitempty"`
	ResponseMode         string   `json:"response_mode,omitempty"`
	DefaultResponseMode  string   `json:"default_response_mode,omitempty"`
}

func recordOf(req fosite.Requester) *requestRecord {
	r := &requestRecord{
		ID:                req.GetID(),
		RequestedAt:       req.GetRequestedAt().UTC(),
		RequestedScope:    req.GetRequestedScopes(),
		GrantedScope:      req.GetGrantedScopes(),
		RequestedAudience: req.GetRequestedAudience(),
		GrantedAudience:   req.GetGrantedAudience(),
		Form:              req.GetRequestForm(),
	}
	if c := req.GetClient(); c != nil {
		r.ClientID = c.GetID()
	}
	if ar, ok := req.(fosite.AuthorizeRequester); ok {
		r.ResponseTypes = ar.GetResponseTypes()
		if u := ar.GetRedirectURI(); u != nil {
			r.RedirectURI = u.String()
		}
		r.State = ar.GetState()
		if a, ok := ar.(*fosite.AuthorizeRequest); ok {
			r.HandledResponseTypes = a.HandledResponseTypes
		}
		r.ResponseMode = string(ar.GetResponseMode())
		r.DefaultResponseMode = string(ar.GetDefaultResponseMode())
	}
	return r
}

func (s *Store) createToken(ctx context.Context, kind int, signature, accessSignature string, req fosite.Requester, expiry fosite.TokenType) error {
	if req == nil {
		return errors.New("gormstore: create token session: nil request")
	}
	rec := recordOf(req)
	reqJSON, err := encode("request", rec)
	if err != nil {
		return err
	}
	sess := req.GetSession()
	if sess != nil && reflect.ValueOf(sess).Kind() == reflect.Pointer && reflect.ValueOf(sess).IsNil() {
		sess = nil
	}
	var exp time.Time
	if sess != nil {
		exp = sess.GetExpiresAt(expiry)
	}
	sessJSON, err := encode("session", sess)
	if err != nil {
		return err
	}
	var access any
	if kind == kindRefresh {
		access = key(accessSignature)
	}
	args := []any{kind, key(signature), key(rec.ID), 1, nanos(exp), access, string(reqJSON), string(sessJSON)}
	return s.write(ctx, func(db *gorm.DB) error {
		_, err := exec(db,
			`INSERT INTO mandate_tokens (kind, signature, request_hash, active, expires_at, access_signature, request, session)
			 VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, args...)
		if err != nil {
			if isUnique(err) {
				return fmt.Errorf("gormstore: token session already exists: %w", storage.ErrConflict)
			}
			return wrap("create token session", err)
		}
		return nil
	})
}

// getToken reads a row and rebuilds its request; active reports the row's flag.
func (s *Store) getToken(ctx context.Context, kind int, signature string, session fosite.Session) (*fosite.Request, *requestRecord, bool, error) {
	var (
		active           int
		reqJSON, sessStr string
	)
	err := queryRow(s.conn(ctx),
		`SELECT active, request, session FROM mandate_tokens WHERE kind = ? AND signature = ?`,
		[]any{kind, key(signature)}, &active, &reqJSON, &sessStr)
	if err != nil {
		return nil, nil, false, wrap("get token session", err)
	}
	var rec requestRecord
	if err := json.Unmarshal([]byte(reqJSON), &rec); err != nil {
		return nil, nil, false, wrap("decode request", err)
	}
	if session == nil {
		session = &storage.Session{}
	}
	if sessStr != "null" {
		if err := json.Unmarshal([]byte(sessStr), session); err != nil {
			return nil, nil, false, wrap("decode session", err)
		}
	}
	if ss, ok := session.(*storage.Session); ok {
		// JSON keeps the offset a time was written with; the contract is UTC.
		ss.AuthTime = utc(ss.AuthTime)
		for k, v := range ss.ExpiresAt {
			ss.ExpiresAt[k] = utc(v)
		}
	}
	client, err := s.Client(ctx, rec.ClientID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		// The grant's client is not registered: the jwt-bearer grant without client
		// authentication names the assertion's issuer, and a client may have been deleted
		// since. The session still reads back (introspection answers for the token), with a
		// client that has only its id — no secret, grant types, scopes or resources — so it
		// authorizes nothing: fosite compares the authenticated client of a refresh or
		// revocation request with it, and authentication reads the ClientStore, never this.
		client = &storage.Client{ID: rec.ClientID}
	case err != nil:
		return nil, nil, false, fmt.Errorf("gormstore: client of token session: %w", err)
	}
	req := &fosite.Request{
		ID:                rec.ID,
		RequestedAt:       rec.RequestedAt.UTC(),
		Client:            client,
		RequestedScope:    nonNil(rec.RequestedScope),
		GrantedScope:      nonNil(rec.GrantedScope),
		RequestedAudience: nonNil(rec.RequestedAudience),
		GrantedAudience:   nonNil(rec.GrantedAudience),
		Form:              rec.Form,
		Session:           session,
	}
	if req.Form == nil {
		req.Form = url.Values{}
	}
	return req, &rec, active == 1, nil
}

func nonNil(a []string) fosite.Arguments {
	if a == nil {
		return fosite.Arguments{}
	}
	return a
}

func (s *Store) deleteToken(ctx context.Context, kind int, signature string) error {
	_, err := exec(s.conn(ctx), `DELETE FROM mandate_tokens WHERE kind = ? AND signature = ?`, kind, key(signature))
	return wrap("delete token session", err)
}

// CreateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage.
func (s *Store) CreateAuthorizeCodeSession(ctx context.Context, code string, req fosite.Requester) error {
	return s.createToken(ctx, kindCode, code, "", req, fosite.AuthorizeCode)
}

// GetAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage. An invalidated code is
// returned together with fosite.ErrInvalidatedAuthorizeCode.
func (s *Store) GetAuthorizeCodeSession(ctx context.Context, code string, session fosite.Session) (fosite.Requester, error) {
	req, _, active, err := s.getToken(ctx, kindCode, code, session)
	if err != nil {
		return nil, err
	}
	if !active {
		return req, fosite.ErrInvalidatedAuthorizeCode
	}
	return req, nil
}

// InvalidateAuthorizeCodeSession implements oauth2.AuthorizeCodeStorage as a conditional update:
// of concurrent callers exactly one succeeds, the others get fosite.ErrInvalidatedAuthorizeCode.
func (s *Store) InvalidateAuthorizeCodeSession(ctx context.Context, code string) error {
	db := s.conn(ctx)
	n, err := exec(db, `UPDATE mandate_tokens SET active = 0 WHERE kind = ? AND signature = ? AND active = 1`, kindCode, key(code))
	if isRetryable(err) {
		return fosite.ErrSerializationFailure
	}
	if err != nil {
		return wrap("invalidate authorize code", err)
	}
	if n == 1 {
		return nil
	}
	if err := s.exists(db, kindCode, code); err != nil {
		return err
	}
	return fosite.ErrInvalidatedAuthorizeCode
}

func (s *Store) exists(db *gorm.DB, kind int, signature string) error {
	var one int
	err := queryRow(db, `SELECT 1 FROM mandate_tokens WHERE kind = ? AND signature = ?`, []any{kind, key(signature)}, &one)
	return wrap("token session", err)
}

// CreateAccessTokenSession implements oauth2.AccessTokenStorage.
func (s *Store) CreateAccessTokenSession(ctx context.Context, signature string, req fosite.Requester) error {
	return s.createToken(ctx, kindAccess, signature, "", req, fosite.AccessToken)
}

// GetAccessTokenSession implements oauth2.AccessTokenStorage.
func (s *Store) GetAccessTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, _, _, err := s.getToken(ctx, kindAccess, signature, session)
	if err != nil {
		return nil, err
	}
	return req, nil
}

// DeleteAccessTokenSession implements oauth2.AccessTokenStorage. Deleting a missing session is
// not an error.
func (s *Store) DeleteAccessTokenSession(ctx context.Context, signature string) error {
	return s.deleteToken(ctx, kindAccess, signature)
}

// CreateRefreshTokenSession implements oauth2.RefreshTokenStorage.
func (s *Store) CreateRefreshTokenSession(ctx context.Context, signature, accessSignature string, req fosite.Requester) error {
	return s.createToken(ctx, kindRefresh, signature, accessSignature, req, fosite.RefreshToken)
}

// GetRefreshTokenSession implements oauth2.RefreshTokenStorage. An inactive (rotated or revoked)
// token is returned together with fosite.ErrInactiveToken, which fosite's reuse detection needs.
func (s *Store) GetRefreshTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, _, active, err := s.getToken(ctx, kindRefresh, signature, session)
	if err != nil {
		return nil, err
	}
	if !active {
		return req, fosite.ErrInactiveToken
	}
	return req, nil
}

// DeleteRefreshTokenSession implements oauth2.RefreshTokenStorage. Deleting a missing session
// is not an error.
func (s *Store) DeleteRefreshTokenSession(ctx context.Context, signature string) error {
	return s.deleteToken(ctx, kindRefresh, signature)
}

// RotateRefreshToken implements oauth2.RefreshTokenStorage: it deactivates the refresh token
// with a conditional update and deletes the grant's access tokens. Of concurrent callers exactly
// one succeeds; the others get fosite.ErrSerializationFailure.
func (s *Store) RotateRefreshToken(ctx context.Context, requestID, signature string) error {
	err := s.inTx(ctx, func(db *gorm.DB) error {
		n, err := exec(db, `UPDATE mandate_tokens SET active = 0 WHERE kind = ? AND signature = ? AND active = 1`, kindRefresh, key(signature))
		if err != nil {
			return wrap("rotate refresh token", err)
		}
		if n != 1 {
			if err := s.exists(db, kindRefresh, signature); err != nil {
				return err
			}
			return fosite.ErrSerializationFailure
		}
		_, err = exec(db, `DELETE FROM mandate_tokens WHERE kind = ? AND request_hash = ?`, kindAccess, key(requestID))
		return wrap("rotate refresh token", err)
	})
	if isRetryable(err) {
		return fosite.ErrSerializationFailure
	}
	return err
}

// RevokeRefreshToken implements oauth2.TokenRevocationStorage: every refresh token of the grant
// becomes inactive (kept, so that reuse is detected).
func (s *Store) RevokeRefreshToken(ctx context.Context, requestID string) error {
	_, err := exec(s.conn(ctx), `UPDATE mandate_tokens SET active = 0 WHERE kind = ? AND request_hash = ? AND active = 1`, kindRefresh, key(requestID))
	return wrap("revoke refresh token", err)
}

// RevokeAccessToken implements oauth2.TokenRevocationStorage: every access token of the grant is
// deleted.
func (s *Store) RevokeAccessToken(ctx context.Context, requestID string) error {
	_, err := exec(s.conn(ctx), `DELETE FROM mandate_tokens WHERE kind = ? AND request_hash = ?`, kindAccess, key(requestID))
	return wrap("revoke access token", err)
}

// CreatePKCERequestSession implements pkce.PKCERequestStorage.
func (s *Store) CreatePKCERequestSession(ctx context.Context, signature string, req fosite.Requester) error {
	return s.createToken(ctx, kindPKCE, signature, "", req, fosite.AuthorizeCode)
}

// GetPKCERequestSession implements pkce.PKCERequestStorage.
func (s *Store) GetPKCERequestSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, _, _, err := s.getToken(ctx, kindPKCE, signature, session)
	if err != nil {
		return nil, err
	}
	return req, nil
}

// DeletePKCERequestSession implements pkce.PKCERequestStorage.
func (s *Store) DeletePKCERequestSession(ctx context.Context, signature string) error {
	return s.deleteToken(ctx, kindPKCE, signature)
}

// CreatePARSession implements fosite.PARStorage (RFC 9126).
func (s *Store) CreatePARSession(ctx context.Context, requestURI string, req fosite.AuthorizeRequester) error {
	if req == nil {
		return errors.New("gormstore: create PAR session: nil request")
	}
	return s.createToken(ctx, kindPAR, requestURI, "", req, fosite.PushedAuthorizeRequestContext)
}

// GetPARSession implements fosite.PARStorage; the session is decoded into a [*storage.Session].
func (s *Store) GetPARSession(ctx context.Context, requestURI string) (fosite.AuthorizeRequester, error) {
	req, rec, _, err := s.getToken(ctx, kindPAR, requestURI, nil)
	if err != nil {
		return nil, err
	}
	ar := &fosite.AuthorizeRequest{
		ResponseTypes:        nonNil(rec.ResponseTypes),
		State:                rec.State,
		HandledResponseTypes: nonNil(rec.HandledResponseTypes),
		ResponseMode:         fosite.ResponseModeType(rec.ResponseMode),
		DefaultResponseMode:  fosite.ResponseModeType(rec.DefaultResponseMode),
		Request:              *req,
	}
	if rec.RedirectURI != "" {
		u, err := url.Parse(rec.RedirectURI)
		if err != nil {
			return nil, wrap("decode PAR redirect_uri", err)
		}
		ar.RedirectURI = u
	}
	return ar, nil
}

// DeletePARSession implements fosite.PARStorage.
func (s *Store) DeletePARSession(ctx context.Context, requestURI string) error {
	return s.deleteToken(ctx, kindPAR, requestURI)
}
