// An independent RFC 8693 client: panva's oauth4webapi drives discovery and the token
// endpoint; jose validates the result against the published JWKS.
import * as oauth from 'oauth4webapi'
import * as jose from 'jose'
import { readFileSync } from 'node:fs'

const issuer = new URL(process.argv[2])
const data = process.argv[3]
const rsB = process.argv[4], rsC = process.argv[5]
const opts = { [oauth.allowInsecureRequests]: true }
const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', ...opts }))
if (!as.grant_types_supported.includes('urn:ietf:params:oauth:grant-type:token-exchange')) throw new Error('not advertised')

const a = { client_id: 'demo-client' }, aAuth = oauth.ClientSecretBasic(readFileSync(`${data}/demo-client.secret`, 'utf8').trim())
let r = await oauth.clientCredentialsGrantRequest(as, a, aAuth, new URLSearchParams({ scope: 'orders:read', resource: rsB }), opts)
const tokA = (await oauth.processClientCredentialsResponse(as, a, r)).access_token

const b = { client_id: 'orders-api' }, bAuth = oauth.ClientSecretBasic(readFileSync(`${data}/demo-orders-api.secret`, 'utf8').trim())
r = await oauth.genericTokenEndpointRequest(as, b, bAuth, 'urn:ietf:params:oauth:grant-type:token-exchange', new URLSearchParams({
  subject_token: tokA, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', resource: rsC,
}), opts)
const ex = await oauth.processGenericTokenEndpointResponse(as, b, r)
console.log('issued_token_type', ex.issued_token_type, 'token_type', ex.token_type, 'expires_in', ex.expires_in, 'scope', ex.scope)

const jwks = jose.createRemoteJWKSet(new URL(as.jwks_uri))
const { payload, protectedHeader } = await jose.jwtVerify(ex.access_token, jwks, { issuer: as.issuer, audience: rsC, typ: 'at+jwt' })
console.log('typ', protectedHeader.typ, 'sub', payload.sub, 'client_id', payload.client_id, 'act', JSON.stringify(payload.act))
if (payload.sub !== 'demo-client' || payload.act?.sub !== 'orders-api') throw new Error('wrong chain')

// A splice: C presents B's token: refused with an RFC error.
r = await oauth.genericTokenEndpointRequest(as, a, aAuth, 'urn:ietf:params:oauth:grant-type:token-exchange', new URLSearchParams({
  subject_token: tokA, subject_token_type: 'urn:ietf:params:oauth:token-type:access_token', resource: rsC,
}), opts)
try { await oauth.processGenericTokenEndpointResponse(as, a, r); throw new Error('accepted') } catch (e) { console.log('refused:', e.error ?? e.message, '-', e.error_description ?? '') }

// RFC 9068 validation as a resource server, with oauth4webapi's own validator.
const req = new Request(rsC + 'stock', { headers: { authorization: `Bearer ${ex.access_token}` } })
const claims = await oauth.validateJwtAccessToken(as, req, rsC, opts)
console.log('validateJwtAccessToken: sub', claims.sub, 'act', JSON.stringify(claims.act))
