package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mandate-dev/mandate/provider"
)

// The demo's users log in with a form and grant scopes on a consent page: what a real
// application puts behind provider.Config's Authenticator and Consenter, in its own style.
// One user, demo-user with the password "demo"; a signed, HttpOnly cookie keeps the login for
// an hour; the consent page posts back what the user grants, with a token that binds the answer
// to the logged-in user and the client (a page of another site cannot answer for them).
const (
	demoUser      = "demo-user"
	demoPassword  = "demo"
	sessionCookie = "mandate_demo_session"
	loginPath     = "/login"
	callbackPath  = "/callback"
	webClient     = "demo-web"
	sessionLife   = time.Hour
)

// demoUI is the demo's login and consent.
type demoUI struct {
	key []byte // signs the session cookie and the consent tokens
	now func() time.Time
}

func newDemoUI(secret []byte) *demoUI {
	k := sha256.Sum256(append([]byte("mandate demo login\x00"), secret...))
	return &demoUI{key: k[:], now: time.Now}
}

func (d *demoUI) mac(parts ...string) string {
	m := hmac.New(sha256.New, d.key)
	m.Write([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(m.Sum(nil))
}

// session returns the logged-in user of r and when they logged in.
func (d *demoUI) session(r *http.Request) (string, time.Time, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return "", time.Time{}, false
	}
	payload, sig, ok := strings.Cut(c.Value, ".")
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if !ok || err != nil || !hmac.Equal([]byte(sig), []byte(d.mac("session", payload))) {
		return "", time.Time{}, false
	}
	user, ts, _ := strings.Cut(string(raw), "|")
	at, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || d.now().Sub(time.Unix(at, 0)) > sessionLife {
		return "", time.Time{}, false
	}
	return user, time.Unix(at, 0), true
}

// Authenticate implements provider.Authenticator: the logged-in user, or a redirect to the
// login form that comes back to this authorization request.
func (d *demoUI) Authenticate(w http.ResponseWriter, r *http.Request) (*provider.Authentication, bool) {
	if user, at, ok := d.session(r); ok {
		return &provider.Authentication{Subject: user, AuthTime: at, AMR: []string{"pwd"}}, true
	}
	back := r.URL.RequestURI()
	if r.Method == http.MethodPost { // a posted authorization request comes back as a GET
		back = r.URL.Path + "?" + r.PostForm.Encode()
	}
	http.Redirect(w, r, loginPath+"?return="+url.QueryEscape(back), http.StatusSeeOther)
	return nil, false
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<title>Log in</title>
<h1>Log in to the mandate demo</h1>
{{if .Failed}}<p>Wrong user name or password.</p>{{end}}
<form method="post" action="/login">
<input type="hidden" name="return" value="{{.Return}}">
<p><label>User <input name="username" value="demo-user"></label>
<p><label>Password <input name="password" type="password"></label> (it is "demo")
<p><button>Log in</button>
</form>`))

// ServeLogin is the login form: GET shows it, POST checks the password, sets the session
// cookie and goes back to where the user came from (a path of this server only).
func (d *demoUI) ServeLogin(w http.ResponseWriter, r *http.Request) {
	back := r.FormValue("return")
	if !strings.HasPrefix(back, "/") || strings.HasPrefix(back, "//") || strings.HasPrefix(back, "/\\") {
		back = "/"
	}
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		_ = loginPage.Execute(w, map[string]any{"Return": back})
		return
	}
	user, pass := r.PostFormValue("username"), r.PostFormValue("password")
	if subtle.ConstantTimeCompare([]byte(user), []byte(demoUser))&subtle.ConstantTimeCompare([]byte(pass), []byte(demoPassword)) != 1 {
		w.WriteHeader(http.StatusUnauthorized)
		_ = loginPage.Execute(w, map[string]any{"Return": back, "Failed": true})
		return
	}
	payload := base64.RawURLEncoding.EncodeToString([]byte(user + "|" + strconv.FormatInt(d.now().Unix(), 10)))
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: payload + "." + d.mac("session", payload), Path: "/",
		HttpOnly: true, SameSite: http.SameSiteLaxMode, MaxAge: int(sessionLife / time.Second)})
	http.Redirect(w, r, back, http.StatusSeeOther)
}

var consentPage = template.Must(template.New("consent").Parse(`<!doctype html>
<title>Allow access?</title>
<h1>{{.ClientID}} asks for access</h1>
<p>Signed in as {{.Subject}}, for {{range .Resources}}{{.}} {{end}}
<form method="post" action="{{.Action}}">
{{range $k, $vs := .Params}}{{range $vs}}<input type="hidden" name="{{$k}}" value="{{.}}">
{{end}}{{end}}<input type="hidden" name="consent" value="{{.Token}}">
{{range .Scopes}}<p><label><input type="checkbox" name="grant {{.}}" checked> {{.}}</label>
{{end}}<p><button>Allow the checked scopes</button>
</form>`))

// Consent implements provider.Consenter: the first time, a page that lists the requested
// scopes; its answer (a post of the same authorization request plus the user's choice and a
// token bound to the user and the client) grants the checked ones.
func (d *demoUI) Consent(w http.ResponseWriter, r *http.Request, req provider.ConsentRequest) ([]string, bool) {
	token := d.mac("consent", req.Subject, req.ClientID)
	if answer := r.PostFormValue("consent"); answer != "" && hmac.Equal([]byte(answer), []byte(token)) {
		var granted []string
		for _, s := range req.Scopes {
			if r.PostFormValue("grant "+s) != "" {
				granted = append(granted, s)
			}
		}
		return granted, true
	}
	params := map[string][]string{}
	if err := r.ParseForm(); err == nil {
		for k, v := range r.Form {
			if k != "consent" && !strings.HasPrefix(k, "grant ") {
				params[k] = v
			}
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	if err := consentPage.Execute(w, map[string]any{
		"ClientID": req.ClientID, "Subject": req.Subject, "Resources": req.Resources, "Scopes": req.Scopes,
		"Action": r.URL.Path, "Params": params, "Token": token,
	}); err != nil {
		http.Error(w, "consent page", http.StatusInternalServerError)
	}
	return nil, false
}

// ServeCallback is the demo web client's redirect URI: it shows the code and how to exchange it.
func (d *demoUI) ServeCallback(tokenURL, verifier string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if e := r.URL.Query().Get("error"); e != "" {
			fmt.Fprintf(w, "The authorization failed: %s\n", e)
			return
		}
		fmt.Fprintf(w, "Exchange the code for a token:\n\n  curl -s -d grant_type=authorization_code -d client_id=%s \\\n"+
			"    -d code=%s -d code_verifier=%s \\\n    -d redirect_uri=%s %s\n",
			webClient, url.QueryEscape(r.URL.Query().Get("code")), verifier, url.QueryEscape(callbackURL(r)), tokenURL)
	})
}

// callbackURL is the redirect URI the request came to.
func callbackURL(r *http.Request) string { return "http://" + r.Host + callbackPath }
