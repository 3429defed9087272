// Package relay is parleyd's TURN server (RFC 8656): the relay that WebRTC
// calls fall back to when the two sides cannot reach each other directly,
// and that "relay only" calls always use to hide each side's IP address.
// It is github.com/pion/turn/v5 with Parley's rules around it.
//
// # Transports
//
// One port (3478 by default) takes TURN over UDP and over TCP; TURN over
// TLS arrives on parleyd's HTTPS port, split from HTTP by package
// server/tlsmux, and reaches Serve as a net.Listener of finished TLS
// connections.
//
// # Credentials
//
// TURN is not an open relay. Every allocation needs a credential of the
// TURN REST API scheme (draft-uberti-behave-turn-rest-00, the "time-limited
// HMAC" one that coturn and browsers use): the username is
// "EXPIRY:user.device", EXPIRY the Unix second when it stops working, and
// the password is base64(HMAC-SHA1(secret, username)). parleyd hands them
// out over the authenticated WebSocket session (wire.OpTurnCredentials), one
// per device, valid for Config.CredentialTTL; a client asks again before it
// ends. The server keeps no list of them: it recomputes the password from
// the secret and refuses one whose expiry has passed.
//
// The secret is 32 random bytes kept in the data folder (file turn-secret,
// mode 0600), made on first start. So credentials survive a restart, and
// several parleyd processes (or a separate coturn) can share one by sharing
// the file. Deleting the file revokes every credential at the next start.
//
// # Where it relays to
//
// A relay that sends wherever a client asks is a way into the operator's
// own network. Permissions (CreatePermission, ChannelBind and TCP Connect)
// to loopback, private (RFC 1918, RFC 4193), shared (RFC 6598), link-local,
// unspecified, multicast, broadcast and reserved addresses are refused
// unless the address is inside one of Config.Allow (parleyd --relay-allow
// CIDR); IPv4-mapped and NAT64 (64:ff9b::/96) forms of such addresses are
// refused too. Without a permission nothing is relayed in either
// direction.
//
// # Logs and metrics
//
// Allocations are logged at info level (the holder "user.device", the
// client's address, the relayed address), and so are refused permissions;
// refused credentials and pion/turn's own messages at debug. Never a
// password or the secret. Allocations reports the allocations in use
// (parleyd's parley_turn_allocations); bytes relayed are not counted yet.
//
// # Lifecycle
//
// Listen binds the sockets and starts nothing; Serve starts pion/turn and,
// when its ctx is done, closes the listeners, the TCP and TLS connections
// being served and every allocation, and returns once nothing of the relay
// runs or logs any more.
package relay
