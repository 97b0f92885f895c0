package gormstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strings"
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
	// 5 was PAR requests (pushed authorization requests), which no version after 6 keeps.
)

// requestRecord is the stored form of a fosite.Requester (and of the fosite.AuthorizeRequester
// fields, which version 6 and earlier kept for PAR requests).
type requestRecord struct {
	ID                string     `json:"id,omitempty"` // empty: the row's signature
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
	row, insert, err := s.tokenWrite(kind, signature, accessSignature, req, expiry)
	if err != nil {
		return err
	}
	return s.writeRow(ctx, row, insert)
}

// tokenWrite encodes a token row and returns the write that inserts it: on PostgreSQL and
// MySQL also the row itself, for the group commit's multi-row insert.
func (s *Store) tokenWrite(kind int, signature, accessSignature string, req fosite.Requester, expiry fosite.TokenType) (*tokenRow, writeOp, error) {
	if req == nil {
		return nil, nil, errors.New("gormstore: create token session: nil request")
	}
	rec := recordOf(req)
	requestHash := key(rec.ID)
	sigHash := requestHash
	if rec.ID == signature {
		// A grant of one token (see byRequest): the ID is not stored twice.
		rec.ID = ""
	} else {
		sigHash = key(signature)
	}
	reqJSON, err := encodeRequest(rec)
	if err != nil {
		return nil, nil, err
	}
	sess := req.GetSession()
	if sess != nil && reflect.ValueOf(sess).Kind() == reflect.Pointer && reflect.ValueOf(sess).IsNil() {
		sess = nil
	}
	var exp time.Time
	if sess != nil {
		exp = sess.GetExpiresAt(expiry)
	}
	sessJSON, err := encodeSession(sess)
	if err != nil {
		return nil, nil, err
	}
	var access any
	if kind == kindRefresh {
		access = key(accessSignature)
	}
	args := []any{kind, sigHash, requestHash, 1, nanos(exp), access, string(reqJSON), string(sessJSON)}
	if s.dialect != dialectSQLite {
		row := &tokenRow{kind: kind, signature: sigHash, args: args}
		return row, func(db *gorm.DB) error { return s.insertTokens(db, []*tokenRow{row}, nil) }, nil
	}
	args = append([]any{nil}, args...)
	return nil, func(db *gorm.DB) error {
		// Another process on the same file may have taken the id: try the next ones.
		for range 8 {
			args[0] = s.expiryRowID(nanos(exp))
			_, err := exec(db,
				`INSERT INTO mandate_tokens (id, kind, signature, request_hash, active, expires_at, access_signature, request, session)
				 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...)
			if !sqliteRowIDTaken(err) {
				return tokenInsertError(err)
			}
		}
		return wrap("create token session", errors.New("no free row id"))
	}, nil
}

// tokenRow is a token row to insert on PostgreSQL or MySQL: its key and the values of
// tokenColumns, in order.
type tokenRow struct {
	kind      int
	signature hashKey
	args      []any
}

// tokenColumns are the columns a tokenRow fills.
const tokenColumns = `kind, signature, request_hash, active, expires_at, access_signature, request, session`

// insertTokens inserts rows (PostgreSQL, MySQL) in one statement. With errs nil (one row), a
// duplicate is returned as the error (storage.ErrConflict, wrapped). Otherwise errs[i] gets the
// outcome of rows[i]: on PostgreSQL, ON CONFLICT DO NOTHING skips a row whose key exists (or
// that an earlier row of the statement took) without aborting the transaction, and RETURNING
// tells which rows went in; MySQL fails the whole statement on a duplicate (and rolls back only
// the statement), which insertTokens returns for the caller to write the rows one by one. An
// error returned means that no row was written.
func (s *Store) insertTokens(db *gorm.DB, rows []*tokenRow, errs []error) error {
	var b strings.Builder
	b.Grow(128 + 32*len(rows))
	b.WriteString("INSERT INTO mandate_tokens (" + tokenColumns + ") VALUES ")
	args := make([]any, 0, len(rows)*8)
	for i, r := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?)")
		args = append(args, r.args...)
	}
	if s.dialect != dialectPostgres {
		_, err := exec(db, b.String(), args...)
		if err != nil {
			return tokenInsertError(err)
		}
		clear(errs)
		return nil
	}
	b.WriteString(" ON CONFLICT (kind, signature) DO NOTHING RETURNING kind, signature")
	res, err := queryRows(db, b.String(), args...)
	if err != nil {
		return wrap("create token session", err)
	}
	defer res.Close()
	type rowKey struct {
		kind int
		sig  string
	}
	inserted := make(map[rowKey]int, len(rows)) // rows inserted with this key
	for res.Next() {
		var kind int
		var sig []byte
		if err := res.Scan(&kind, &sig); err != nil {
			return wrap("create token session", err)
		}
		inserted[rowKey{kind, string(sig)}]++
	}
	if err := res.Err(); err != nil {
		return wrap("create token session", err)
	}
	conflict := fmt.Errorf("gormstore: token session already exists: %w", storage.ErrConflict)
	for i, r := range rows {
		k := rowKey{r.kind, string(r.signature)}
		var e error
		if inserted[k] > 0 {
			inserted[k]-- // the first row with this key went in; a later one did not
		} else {
			e = conflict
		}
		if errs == nil {
			if e != nil {
				return e
			}
			continue
		}
		errs[i] = e
	}
	return nil
}

func tokenInsertError(err error) error {
	switch {
	case err == nil:
		return nil
	case isUnique(err):
		return fmt.Errorf("gormstore: token session already exists: %w", storage.ErrConflict)
	}
	return wrap("create token session", err)
}

// expiryRowID is the id of a new SQLite token row that expires at exp (Unix nanoseconds, 0 for
// never): the expiry's second in the high bits and a sequence number in the low 31, so that
// the table is ordered by expiry and the collector deletes a range of ids (see DeleteExpired).
// Rows that never expire get negative ids, which no range the collector deletes reaches.
func (s *Store) expiryRowID(exp int64) int64 {
	n := s.seq.Add(1)
	if exp == 0 {
		return -1 - int64(n&(1<<62-1))
	}
	return expirySecond(exp)<<31 | int64(n&(1<<31-1))
}

// expirySecond is the second of exp (Unix nanoseconds) that expiryRowID keeps, clamped to
// [1, 2^32-1] so that the id stays positive.
func expirySecond(exp int64) int64 {
	return min(max(exp/1e9, 1), 1<<32-1)
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
	if rec.ID == "" {
		rec.ID = signature
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

// CreateAccessTokenSessionUsingJTI implements storage.JTITokenWriter: the JWT ID's use and then
// the token row, as one unit (see unit) through the group commit.
func (s *Store) CreateAccessTokenSessionUsingJTI(ctx context.Context, signature string, req fosite.Requester, jti string, jtiExpiresAt time.Time) error {
	_, insert, err := s.tokenWrite(kindAccess, signature, "", req, fosite.AccessToken)
	if err != nil {
		return err
	}
	return s.write(ctx, s.unit(s.useJTI(jti, jtiExpiresAt), insert))
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

// AccessTokenExists implements storage.AccessTokenChecker: one primary-key probe, nothing
// decoded.
func (s *Store) AccessTokenExists(ctx context.Context, signature string) (bool, error) {
	err := s.exists(s.conn(ctx), kindAccess, signature)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
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
		_, err = s.byRequest(db, `DELETE FROM mandate_tokens WHERE`, kindAccess, requestID)
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
	return wrap("revoke refresh token", s.inTx(ctx, func(db *gorm.DB) error {
		_, err := s.byRequest(db, `UPDATE mandate_tokens SET active = 0 WHERE active = 1 AND`, kindRefresh, requestID)
		return err
	}))
}

// RevokeAccessToken implements oauth2.TokenRevocationStorage: every access token of the grant is
// deleted.
func (s *Store) RevokeAccessToken(ctx context.Context, requestID string) error {
	return wrap("revoke access token", s.inTx(ctx, func(db *gorm.DB) error {
		_, err := s.byRequest(db, `DELETE FROM mandate_tokens WHERE`, kindAccess, requestID)
		return err
	}))
}

// byRequest runs stmt, an UPDATE or DELETE of mandate_tokens that ends in "WHERE" or "AND", on
// the rows of kind whose request ID is requestID, and returns how many it changed.
//
// The request index leaves out the rows whose request ID is their own signature — a grant of
// one token: the provider gives a client_credentials token's request that ID, so the commonest
// insert writes one random index entry fewer. Those rows are found by their (kind, signature)
// key instead, in a second statement; each statement repeats the index's condition so that the
// database uses an index and never scans the table. SQLite and PostgreSQL have partial indexes;
// on MySQL the index covers request_key, a generated column that is NULL for those rows (schema
// version 8).
func (s *Store) byRequest(db *gorm.DB, stmt string, kind int, requestID string) (int64, error) {
	h := key(requestID)
	indexed, keyed := s.partialByRequest(stmt)
	n, err := exec(db, indexed, kind, h)
	if err != nil {
		return n, err
	}
	m, err := exec(db, keyed, kind, h)
	return n + m, err
}

// partialByRequest returns byRequest's two statements: through the request index, and through
// the (kind, signature) key.
func (s *Store) partialByRequest(stmt string) (indexed, keyed string) {
	keyed = stmt + ` kind = ? AND signature = ? AND request_hash = signature`
	if s.dialect == dialectMySQL {
		return stmt + ` kind = ? AND request_key = ?`, keyed
	}
	return stmt + ` kind = ? AND request_hash = ? AND request_hash <> signature`, keyed
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
