package provider_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mysqldrv "github.com/go-sql-driver/mysql"
	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/mandate-dev/mandate/provider"
	"github.com/mandate-dev/mandate/storage"
	"github.com/mandate-dev/mandate/storage/gormstore"
	"github.com/mandate-dev/mandate/strategy"
)

// The database outage test stops and restarts real database servers, so it runs only when
// asked to (MANDATE_TEST_OUTAGE=1), and never beside other tests that use those servers: CI
// runs it as a step of its own after the main suite. The commands that stop and start each
// server come from the environment; the defaults work on the CI machine.
const (
	envOutage = "MANDATE_TEST_OUTAGE"

	defaultPGStop    = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | head -n1) main stop"
	defaultPGStart   = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | head -n1) main start"
	defaultMyStop    = "mysqladmin -h127.0.0.1 -uroot shutdown"
	defaultMyStart   = "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd"
	outageDowntime   = 3 * time.Second // how long the server stays stopped
	outageWorkers    = 8
	outageRequestGap = 2 * time.Millisecond // each worker's pause between requests: bounded load
)

// outageServer is one database server the test stops and starts.
type outageServer struct {
	name, dsnEnv, stopEnv, startEnv, stop, start string
	// admin opens a connection to the server's admin DSN.
	admin func(dsn string) (*gorm.DB, error)
	// fresh creates a database of its own on the server and returns its DSN and how to drop it.
	fresh func(t *testing.T, admin *gorm.DB, dsn string) (string, func(*gorm.DB) error)
}

func outageServers() []outageServer {
	return []outageServer{
		{
			name: "Postgres", dsnEnv: "MANDATE_TEST_POSTGRES_DSN",
			stopEnv: "MANDATE_TEST_PG_STOP", startEnv: "MANDATE_TEST_PG_START", stop: defaultPGStop, start: defaultPGStart,
			admin: func(dsn string) (*gorm.DB, error) {
				return gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard})
			},
			fresh: func(t *testing.T, admin *gorm.DB, dsn string) (string, func(*gorm.DB) error) {
				name := outageDBName()
				if err := admin.Exec("CREATE DATABASE " + name).Error; err != nil {
					t.Fatalf("create database: %v", err)
				}
				u, err := url.Parse(dsn)
				if err != nil {
					t.Fatal(err)
				}
				u.Path = "/" + name
				return u.String(), func(db *gorm.DB) error { return db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)").Error }
			},
		},
		{
			name: "MariaDB", dsnEnv: "MANDATE_TEST_MYSQL_DSN",
			stopEnv: "MANDATE_TEST_MYSQL_STOP", startEnv: "MANDATE_TEST_MYSQL_START", stop: defaultMyStop, start: defaultMyStart,
			admin: func(dsn string) (*gorm.DB, error) {
				return gorm.Open(mysql.Open(strings.TrimPrefix(dsn, "mysql://")), &gorm.Config{Logger: logger.Discard})
			},
			fresh: func(t *testing.T, admin *gorm.DB, dsn string) (string, func(*gorm.DB) error) {
				name := outageDBName()
				if err := admin.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin").Error; err != nil {
					t.Fatalf("create database: %v", err)
				}
				cfg, err := mysqldrv.ParseDSN(strings.TrimPrefix(dsn, "mysql://"))
				if err != nil {
					t.Fatal(err)
				}
				cfg.DBName = name
				return "mysql://" + cfg.FormatDSN(), func(db *gorm.DB) error { return db.Exec("DROP DATABASE IF EXISTS " + name).Error }
			},
		},
	}
}

func outageDBName() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "mandate_outage_" + hex.EncodeToString(b)
}

// sh runs a shell command, bounded in time, and returns its combined output.
func sh(command string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "sh", "-c", command).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// reachable reports whether the server answers a query through a fresh connection.
func (s outageServer) reachable(dsn string) bool {
	db, err := s.admin(dsn)
	if err != nil {
		return false
	}
	sqlDB, err := db.DB()
	if err != nil {
		return false
	}
	defer sqlDB.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return sqlDB.PingContext(ctx) == nil
}

// waitReachable polls until the server's reachability is want, for at most d.
func (s outageServer) waitReachable(dsn string, want bool, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if s.reachable(dsn) == want {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// bringUp starts the server and waits until it answers; a start that found the old process
// still exiting (start-stop-daemon --oknodo then does nothing) is repeated.
func (s outageServer) bringUp(dsn, start string) error {
	var last string
	for range 4 {
		out, err := sh(start)
		last = fmt.Sprintf("%v %s", err, out)
		if s.waitReachable(dsn, true, 20*time.Second) {
			return nil
		}
	}
	return fmt.Errorf("%s did not come back: %s", s.name, last)
}

// outcome is what one token request got.
type outcome struct {
	at         time.Time
	status     int
	errCode    string
	retryAfter string
	token      string
	transport  error
}

// TestDatabaseOutage stops the database under a bounded load of client_credentials requests
// (persisted access tokens), keeps it down for a few seconds, starts it again and checks that
// the provider never answered 500, answered the requests it could not serve 503
// temporarily_unavailable with Retry-After, never answered a token that is not stored, serves
// again by itself (no restart), and logged the outage in a bounded number of lines.
func TestDatabaseOutage(t *testing.T) {
	if os.Getenv(envOutage) != "1" {
		t.Skipf("%s is not 1: this test stops and restarts the database servers; CI runs it in a step of its own", envOutage)
	}
	for _, srv := range outageServers() {
		t.Run(srv.name, func(t *testing.T) { runOutage(t, srv) })
	}
}

func runOutage(t *testing.T, srv outageServer) {
	dsn := os.Getenv(srv.dsnEnv)
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set; CI requires the outage test on every database", srv.dsnEnv)
		}
		t.Skipf("%s is not set", srv.dsnEnv)
	}
	stop, start := srv.stop, srv.start
	if v := os.Getenv(srv.stopEnv); v != "" {
		stop = v
	}
	if v := os.Getenv(srv.startEnv); v != "" {
		start = v
	}
	admin, err := srv.admin(dsn)
	if err != nil {
		t.Fatalf("%s unreachable before the test: %v", srv.name, err)
	}
	if sqlDB, err := admin.DB(); err == nil {
		defer sqlDB.Close()
	}
	testDSN, drop := srv.fresh(t, admin, dsn)
	t.Cleanup(func() {
		// Runs after the restart below (cleanups run last-registered first).
		if db, err := srv.admin(dsn); err == nil {
			if err := drop(db); err != nil {
				t.Errorf("drop the test database: %v", err)
			}
			if sqlDB, err := db.DB(); err == nil {
				sqlDB.Close()
			}
		}
	})

	st, err := gormstore.Open(context.Background(), testDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logs := &logLines{}
	as := newASWith(t, st, testSecret(t), "", func(c *provider.Config) { c.Logger = slog.New(logs) })

	// The load: workers post token requests until told to stop, each on its own keep-alive
	// connection, with a short pause between requests.
	var (
		mu       sync.Mutex
		outcomes []outcome
		quit     atomic.Bool
		wg       sync.WaitGroup
	)
	body := ccForm.Encode()
	for range outageWorkers {
		wg.Go(func() {
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 30 * time.Second}
			defer client.CloseIdleConnections()
			for !quit.Load() {
				o := postToken(client, as.endpoint("token"), body)
				mu.Lock()
				outcomes = append(outcomes, o)
				mu.Unlock()
				time.Sleep(outageRequestGap)
			}
		})
	}
	stopLoad := func() {
		if !quit.Swap(true) {
			wg.Wait()
		}
	}
	defer stopLoad()

	time.Sleep(time.Second) // the load runs against a healthy database first

	// Whatever happens from here on, the server is started again before the test ends.
	stopped := true
	t.Cleanup(func() {
		if stopped {
			if err := srv.bringUp(dsn, start); err != nil {
				t.Errorf("restarting %s after the test: %v", srv.name, err)
			}
		}
	})
	stopAt := time.Now()
	if out, err := sh(stop); err != nil {
		t.Errorf("stop %s: %v: %s", srv.name, err, out)
	}
	if !srv.waitReachable(dsn, false, 30*time.Second) {
		t.Errorf("%s still answers after the stop command", srv.name)
	}
	downAt := time.Now()
	time.Sleep(outageDowntime)
	startAt := time.Now()
	if err := srv.bringUp(dsn, start); err != nil {
		t.Fatal(err)
	}
	stopped = false
	upAt := time.Now()

	// The load continues until the provider has served for a while after its last 503 (it
	// must recover by itself, with no restart), or gives up after 30 s.
	deadline := upAt.Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var lastOK, last503 time.Time
		mu.Lock()
		for _, o := range outcomes {
			if o.status == 200 && o.at.After(lastOK) {
				lastOK = o.at
			}
			if o.status != 200 && o.at.After(last503) {
				last503 = o.at
			}
		}
		mu.Unlock()
		if lastOK.After(upAt) && lastOK.Sub(last503) > 1500*time.Millisecond {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	stopLoad()

	// What the clients got.
	var ok, unavailable, before, during, after int
	statuses := map[int]int{}
	var tokens []string
	var firstFail, lastFail time.Time
	wrong := 0 // answers that are neither a token nor a retryable 503
	for _, o := range outcomes {
		if o.transport != nil {
			t.Errorf("a request got no HTTP answer: %v", o.transport)
			continue
		}
		statuses[o.status]++
		switch {
		case o.status == 200:
			ok++
			tokens = append(tokens, o.token)
			switch {
			case o.at.Before(stopAt):
				before++
			case o.at.Before(upAt):
				during++
			default:
				after++
			}
		case o.status == 503 && o.errCode == "temporarily_unavailable" && o.retryAfter == "2":
			unavailable++
			if firstFail.IsZero() || o.at.Before(firstFail) {
				firstFail = o.at
			}
			if o.at.After(lastFail) {
				lastFail = o.at
			}
		default:
			if wrong++; wrong <= 10 {
				t.Errorf("answer %d %q (Retry-After %q) at %s after the stop command: want 200, or 503 temporarily_unavailable with Retry-After 2",
					o.status, o.errCode, o.retryAfter, o.at.Sub(stopAt).Round(time.Millisecond))
			}
		}
	}
	if wrong > 10 {
		t.Errorf("... %d such answers in all", wrong)
	}
	if statuses[500] > 0 {
		t.Errorf("%d requests answered 500", statuses[500])
	}
	if unavailable == 0 {
		t.Fatalf("no request was answered 503 while the database was down; statuses %v", statuses)
	}
	var recovered time.Time // the first token after the last 503
	for _, o := range outcomes {
		if o.status == 200 && o.at.After(lastFail) && (recovered.IsZero() || o.at.Before(recovered)) {
			recovered = o.at
		}
	}
	if recovered.IsZero() || after == 0 {
		t.Fatalf("the provider did not serve again within 30 s of %s coming back", srv.name)
	}

	// Every token answered 200 is stored, and introspects as active.
	ctx := context.Background()
	for _, tok := range tokens {
		if _, err := st.GetAccessTokenSession(ctx, strategy.AccessTokenSignature(tok), &storage.Session{}); err != nil {
			t.Errorf("a token answered 200 is not stored: %v", err)
		}
	}
	step := max(1, len(tokens)/200)
	introspected := 0
	for i := 0; i < len(tokens); i += step {
		if m := as.auditIntrospect(tokens[i]); m["active"] != true {
			t.Errorf("a token answered 200 introspects as %v", m)
		}
		introspected++
	}

	// The outage is logged in a bounded number of lines: one when it began, at most one per
	// interval while it lasted, and one when it ended; never as server errors.
	outage := lastFail.Sub(firstFail)
	errorLines := logs.matching("ERROR storage")
	if limit := 1 + int(outage/(10*time.Second)); len(errorLines) < 1 || len(errorLines) > limit {
		t.Errorf("%d outage lines for an outage of %s, want 1 to %d:\n%s", len(errorLines), outage, limit, strings.Join(errorLines, "\n"))
	}
	if got := logs.matching("storage available again"); len(got) != 1 {
		t.Errorf("recovery logged %d times, want once:\n%s", len(got), logs.all())
	}
	if got := logs.matching("server error"); len(got) > 0 {
		t.Errorf("%d server-error lines during the outage, the first: %s", len(got), got[0])
	}
	since := func(at time.Time) string { return at.Sub(stopAt).Round(time.Millisecond).String() }
	t.Logf("%s: %d requests: %d tokens (%d before the stop command, %d between it and the server answering again, %d after), %d answered 503; statuses %v",
		srv.name, len(outcomes), ok, before, during, after, unavailable, statuses)
	t.Logf("%s, from the stop command: server refusing at %s, start command at %s, answering at %s; 503s from %s to %s; first token after the last 503 at %s",
		srv.name, since(downAt), since(startAt), since(upAt), since(firstFail), since(lastFail), since(recovered))
	t.Logf("%s: %d tokens found in the store, %d introspected active; log:\n%s", srv.name, len(tokens), introspected, strings.Join(logs.matching("storage"), "\n"))
}

// postToken sends one client_credentials request and records the answer.
func postToken(client *http.Client, endpoint, body string) outcome {
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(body))
	if err != nil {
		return outcome{at: time.Now(), transport: err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("svc", "svc-secret-0123456789")
	resp, err := client.Do(req)
	if err != nil {
		return outcome{at: time.Now(), transport: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	o := outcome{at: time.Now(), status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	var m struct {
		Error       string `json:"error"`
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		o.errCode = "(not JSON)"
		return o
	}
	o.errCode, o.token = m.Error, m.AccessToken
	return o
}
