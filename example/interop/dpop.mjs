// An independent RFC 9449 client: panva's oauth4webapi gets a DPoP-bound token from mandate's
// example and uses it at the demo resource server (strategy/verify), then asks for an RFC 9701
// JWT introspection response, which oauth4webapi validates.
import * as oauth from 'oauth4webapi'
import { readFileSync } from 'node:fs'

const issuer = new URL(process.argv[2]), data = process.argv[3], rsB = process.argv[4]
const opts = { [oauth.allowInsecureRequests]: true }
const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...opts }))
console.log('dpop_signing_alg_values_supported', as.dpop_signing_alg_values_supported.join(' '))

const a = { client_id: 'demo-client' }, aAuth = oauth.ClientSecretBasic(readFileSync(`${data}/demo-client.secret`, 'utf8').trim())
const DPoP = oauth.DPoP(a, await oauth.generateKeyPair('ES256'))
const params = new URLSearchParams({ scope: 'orders:read', resource: rsB })
let r = await oauth.clientCredentialsGrantRequest(as, a, aAuth, params, { DPoP, ...opts })
let tok
try { tok = await oauth.processClientCredentialsResponse(as, a, r) } catch (e) {
  if (!oauth.isDPoPNonceError(e)) throw e
  r = await oauth.clientCredentialsGrantRequest(as, a, aAuth, params, { DPoP, ...opts })
  tok = await oauth.processClientCredentialsResponse(as, a, r)
}
console.log('token_type', tok.token_type)
if (tok.token_type !== 'dpop') throw new Error('not DPoP-bound')

r = await oauth.protectedResourceRequest(tok.access_token, 'GET', new URL(rsB + 'orders'), new Headers(), null, { DPoP, ...opts })
console.log('resource server:', r.status, await r.text())
if (r.status !== 200) throw new Error('refused')
// The same token as a bearer token: refused (RFC 9449 §7.2).
r = await fetch(rsB + 'orders', { headers: { authorization: `Bearer ${tok.access_token}` } })
console.log('as Bearer:', r.status, r.headers.get('www-authenticate'))
if (r.status !== 401) throw new Error('a bound token was accepted as Bearer')

// RFC 9701: B (orders-api, which serves rsB) introspects the token and asks for a signed JWT.
const b = { client_id: 'orders-api' }
const bAuth = oauth.ClientSecretBasic(readFileSync(`${data}/demo-orders-api.secret`, 'utf8').trim())
r = await oauth.introspectionRequest(as, b, bAuth, tok.access_token, { requestJwtResponse: true, ...opts })
console.log('introspection content-type', r.headers.get('content-type'))
const intro = await oauth.processIntrospectionResponse(as, b, r)
console.log('introspection: active', intro.active, 'token_type', intro.token_type, 'cnf', JSON.stringify(intro.cnf))
if (!intro.active || intro.token_type !== 'DPoP' || !intro.cnf?.jkt) throw new Error('introspection does not say bound')
