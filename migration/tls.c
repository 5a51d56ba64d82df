/*
 * The TLS transport of a migration connection (GnuTLS): TLS 1.3 only,
 * mutual X.509.  The credentials come from a directory laid out like
 * QEMU's tls-creds-x509 (docs/migration.md):
 *
 *   ca-cert.pem                     the CA both peers must chain to
 *   ca-crl.pem                      revoked certificates (optional)
 *   server-cert.pem, server-key.pem this daemon as a destination
 *   client-cert.pem, client-key.pem this daemon as a source
 *
 * Both sides verify the peer's chain in the handshake, before a byte of
 * the protocol (and so of state) is read; the source also checks the
 * destination's certificate against the host it was given, as QEMU
 * does.  The destination takes any client certificate the CA signed
 * (QEMU's default too, without tls-authz).
 */
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <arpa/inet.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "migration/conn.h"
#include "migration/mig.h"

#define TLS_PRIORITY	"NORMAL:-VERS-ALL:+VERS-TLS1.3"

static struct {
	char dir[PATH_MAX];
	gnutls_certificate_credentials_t server, client;
	gnutls_priority_t prio;
	bool loaded;
} tls;

/*
 * GnuTLS writes each record (at most 16 KiB) with a system call of its
 * own and reads each in two (its header, then its body): 60 or more per
 * MiB, on hosts where a system call is dear.  So a session's transport
 * is ours: tls_send() has GnuTLS encrypt up to TLS_BATCH bytes into
 * records it gathers (tls_push() in gather mode), then sends them all at
 * once; tls_pull() reads what the socket has, up to TLS_RBUF bytes, and
 * hands GnuTLS its records from that.  The handshake's writes go out at
 * once (gather off).
 */
#define TLS_BATCH	(256u << 10)	/* plaintext per send() */
#define TLS_RBUF	(256u << 10)

struct tls_conn {
	gnutls_session_t s;
	int fd;
	bool gather;
	unsigned char *out;		/* gathered records */
	size_t out_len, out_cap;
	unsigned char *in;		/* read, not yet taken by GnuTLS */
	size_t in_off, in_len;
};

static struct tls_conn *tconn(struct mig_conn *c)
{
	return c->tls;
}

static gnutls_session_t sess(struct mig_conn *c)
{
	return tconn(c)->s;
}

static int send_all(int fd, const unsigned char *p, size_t len)
{
	ssize_t n;

	while (len) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= n;
	}
	return 0;
}

static ssize_t tls_push(gnutls_transport_ptr_t ptr, const giovec_t *iov,
			int iovcnt)
{
	struct tls_conn *t = ptr;
	struct msghdr m = { .msg_iov = (struct iovec *)iov,
			    .msg_iovlen = iovcnt };
	size_t total = 0, need;
	unsigned char *grown;
	ssize_t n;
	int i;

	if (!t->gather) {
		n = sendmsg(t->fd, &m, MSG_NOSIGNAL);
		if (n < 0)
			gnutls_transport_set_errno(t->s, errno);
		return n;
	}
	for (i = 0; i < iovcnt; i++)
		total += iov[i].iov_len;
	need = t->out_len + total;
	if (need > t->out_cap) {
		grown = realloc(t->out, need);
		if (!grown) {
			gnutls_transport_set_errno(t->s, ENOMEM);
			return -1;
		}
		t->out = grown;
		t->out_cap = need;
	}
	for (i = 0; i < iovcnt; i++) {
		memcpy(t->out + t->out_len, iov[i].iov_base, iov[i].iov_len);
		t->out_len += iov[i].iov_len;
	}
	return total;
}

static ssize_t tls_pull(gnutls_transport_ptr_t ptr, void *buf, size_t len)
{
	struct tls_conn *t = ptr;
	ssize_t n;

	if (t->in_off == t->in_len) {
		do
			n = recv(t->fd, t->in, TLS_RBUF, 0);
		while (n < 0 && errno == EINTR);
		if (n < 0) {
			gnutls_transport_set_errno(t->s, errno);
			return -1;
		}
		t->in_off = 0;
		t->in_len = n;
		if (!n)
			return 0;
	}
	if (len > t->in_len - t->in_off)
		len = t->in_len - t->in_off;
	memcpy(buf, t->in + t->in_off, len);
	t->in_off += len;
	return len;
}

/* The handshake's timeout: readable within ms, as GnuTLS's own does. */
static int tls_pull_timeout(gnutls_transport_ptr_t ptr, unsigned ms)
{
	struct tls_conn *t = ptr;
	struct pollfd p = { .fd = t->fd, .events = POLLIN };
	int n;

	if (t->in_off < t->in_len)
		return 1;
	n = poll(&p, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);
	if (n < 0)
		gnutls_transport_set_errno(t->s, errno);
	return n;
}

/* What a failed GnuTLS call means, in c->err. */
static void tls_err(struct mig_conn *c, const char *what, int rc)
{
	if (rc == GNUTLS_E_AGAIN)
		snprintf(c->err, sizeof(c->err), "%s timed out", what);
	else if (rc == GNUTLS_E_FATAL_ALERT_RECEIVED)
		snprintf(c->err, sizeof(c->err), "%s: the peer refused the "
			 "connection: TLS alert '%s'", what,
			 gnutls_alert_get_name(gnutls_alert_get(sess(c))));
	else if (rc == GNUTLS_E_PREMATURE_TERMINATION || rc == 0 ||
		 rc == GNUTLS_E_PUSH_ERROR)
		snprintf(c->err, sizeof(c->err), "the peer closed the "
			 "connection");
	else
		snprintf(c->err, sizeof(c->err), "%s: %s", what,
			 gnutls_strerror(rc));
}

static ssize_t tls_send(struct mig_conn *c, const void *buf, size_t len)
{
	struct tls_conn *t = tconn(c);
	size_t done = 0;
	ssize_t n;

	if (len > TLS_BATCH)
		len = TLS_BATCH;
	t->gather = true;
	t->out_len = 0;
	while (done < len) {
		n = gnutls_record_send(t->s, (const char *)buf + done,
				       len - done);
		if (n == GNUTLS_E_INTERRUPTED)
			continue;
		if (n <= 0) {
			t->gather = false;
			tls_err(c, "send", n);
			return -1;
		}
		done += n;
	}
	t->gather = false;
	if (send_all(t->fd, t->out, t->out_len) < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			snprintf(c->err, sizeof(c->err), "send timed out");
		else
			snprintf(c->err, sizeof(c->err), "send: %s",
				 strerror(errno ? errno : EPIPE));
		return -1;
	}
	return done;
}

static ssize_t tls_recv(struct mig_conn *c, void *buf, size_t len)
{
	ssize_t n;

	do
		n = gnutls_record_recv(sess(c), buf, len);
	while (n == GNUTLS_E_INTERRUPTED);
	if (n <= 0) {
		tls_err(c, "receive", n);
		return -1;
	}
	return n;
}

static bool tls_pending(struct mig_conn *c)
{
	struct tls_conn *t = tconn(c);

	return gnutls_record_check_pending(t->s) > 0 || t->in_off < t->in_len;
}

/*
 * No close_notify: the protocol ends on its own lines (RUNNING, ERR),
 * so a cut connection is never taken for a complete one, and a bye to
 * a stalled peer would wait for its timeout.
 */
static void tls_release(struct mig_conn *c)
{
	struct tls_conn *t = tconn(c);

	if (!t)
		return;
	if (t->s)
		gnutls_deinit(t->s);
	free(t->out);
	free(t->in);
	free(t);
	c->tls = NULL;
}

static const struct mig_conn_ops tls_ops = {
	.name = "TLS",
	.send = tls_send,
	.recv = tls_recv,
	.pending = tls_pending,
	.release = tls_release,
};

/* ------------------------------------------------------------ loading */

static int path(char *buf, size_t len, const char *file)
{
	return snprintf(buf, len, "%s/%s", tls.dir, file) < (int)len ? 0 : -1;
}

static bool exists(const char *file)
{
	char p[PATH_MAX];

	return !path(p, sizeof(p), file) && access(p, F_OK) == 0;
}

static int load_creds(gnutls_certificate_credentials_t *cr,
		      const char *cert, const char *key)
{
	char ca[PATH_MAX], crl[PATH_MAX], c[PATH_MAX], k[PATH_MAX];
	int rc;

	if (path(ca, sizeof(ca), "ca-cert.pem") ||
	    path(crl, sizeof(crl), "ca-crl.pem") ||
	    (cert && (path(c, sizeof(c), cert) || path(k, sizeof(k), key)))) {
		log_err("--migrate-tls %s: path too long", tls.dir);
		return -1;
	}
	if (gnutls_certificate_allocate_credentials(cr) < 0)
		return -1;
	rc = gnutls_certificate_set_x509_trust_file(*cr, ca,
						    GNUTLS_X509_FMT_PEM);
	if (rc <= 0) {
		log_err("--migrate-tls: %s: %s", ca, rc < 0 ?
			gnutls_strerror(rc) : "no certificate in it");
		return -1;
	}
	if (exists("ca-crl.pem")) {
		rc = gnutls_certificate_set_x509_crl_file(*cr, crl,
							  GNUTLS_X509_FMT_PEM);
		if (rc < 0) {
			log_err("--migrate-tls: %s: %s", crl,
				gnutls_strerror(rc));
			return -1;
		}
	}
	if (!cert)
		return 0;
	rc = gnutls_certificate_set_x509_key_file(*cr, c, k,
						  GNUTLS_X509_FMT_PEM);
	if (rc < 0) {
		log_err("--migrate-tls: %s, %s: %s", c, k, gnutls_strerror(rc));
		return -1;
	}
	return 0;
}

/*
 * Load the directory: ca-cert.pem always, the server pair when this
 * daemon listens, the client pair when it is there (without it, this
 * daemon can still try to send, and destinations refuse it).
 */
int mig_tls_load(const char *dir, bool server)
{
	const char *errpos;
	bool client;

	if (snprintf(tls.dir, sizeof(tls.dir), "%s", dir) >=
	    (int)sizeof(tls.dir))
		return -1;
	client = exists("client-cert.pem");
	if (gnutls_priority_init(&tls.prio, TLS_PRIORITY, &errpos) < 0) {
		log_err("--migrate-tls: GnuTLS has no TLS 1.3 ('%s')",
			TLS_PRIORITY);
		return -1;
	}
	if (server && load_creds(&tls.server, "server-cert.pem",
				 "server-key.pem") < 0)
		return -1;
	if (load_creds(&tls.client, client ? "client-cert.pem" : NULL,
		       "client-key.pem") < 0)
		return -1;
	if (!client)
		log_warn("--migrate-tls %s: no client-cert.pem: destinations "
			 "will refuse this daemon's migrations", dir);
	tls.loaded = true;
	log_info("migration TLS credentials from %s (TLS 1.3, mutual X.509)",
		 dir);
	return 0;
}

bool mig_tls_loaded(void)
{
	return tls.loaded;
}

const char *mig_tls_dir(void)
{
	return tls.loaded ? tls.dir : NULL;
}

/* ------------------------------------------------------------ handshake */

static bool is_address(const char *host)
{
	unsigned char a[16];

	return inet_pton(AF_INET, host, a) == 1 ||
	       inet_pton(AF_INET6, host, a) == 1;
}

/* The handshake failed: say why (the peer's certificate first). */
static void handshake_err(struct mig_conn *c, int rc)
{
	gnutls_datum_t out = { NULL, 0 };
	unsigned status;

	if (rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
		status = gnutls_session_get_verify_cert_status(sess(c));
		if (gnutls_certificate_verification_status_print(status,
				GNUTLS_CRT_X509, &out, 0) == 0) {
			char *t = (char *)out.data, *e = t + strlen(t);

			while (e > t && e[-1] == ' ')
				*--e = '\0';
			snprintf(c->err, sizeof(c->err), "TLS handshake: the "
				 "peer's certificate is refused: %s", t);
			gnutls_free(out.data);
			return;
		}
	}
	if (rc == GNUTLS_E_NO_CERTIFICATE_FOUND ||
	    rc == GNUTLS_E_CERTIFICATE_REQUIRED) {
		snprintf(c->err, sizeof(c->err), "TLS handshake: the peer "
			 "sent no certificate");
		return;
	}
	tls_err(c, "TLS handshake", rc);
}

static int handshake(struct mig_conn *c, int fd, bool server,
		     const char *host)
{
	unsigned flags = GNUTLS_NO_SIGNAL |
			 (server ? GNUTLS_SERVER | GNUTLS_NO_TICKETS
				 : GNUTLS_CLIENT);
	struct tls_conn *t;
	gnutls_session_t s;
	int rc;

	if (mig_conn_init(c, fd, &tls_ops) < 0)
		goto fail;
	if (!tls.loaded) {
		snprintf(c->err, sizeof(c->err), "this daemon has no TLS "
			 "credentials (--migrate-tls DIR)");
		goto fail;
	}
	t = calloc(1, sizeof(*t));
	if (!t || !(t->in = malloc(TLS_RBUF))) {
		free(t);
		snprintf(c->err, sizeof(c->err), "out of memory");
		goto fail;
	}
	c->tls = t;
	if (gnutls_init(&s, flags) < 0) {
		snprintf(c->err, sizeof(c->err), "gnutls_init failed");
		goto fail;
	}
	t->s = s;
	if (gnutls_priority_set(s, tls.prio) < 0 ||
	    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE,
				   server ? tls.server : tls.client) < 0) {
		snprintf(c->err, sizeof(c->err), "TLS session setup failed");
		goto fail;
	}
	if (server) {
		gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
		/*
		 * Do not name our CA to the client: a client whose
		 * certificate another CA signed then sends it anyway, and
		 * the log says why it is refused, not just that none came.
		 */
		gnutls_certificate_send_x509_rdn_sequence(s, 1);
	}
	else if (!is_address(host))	/* SNI names hosts, not addresses */
		gnutls_server_name_set(s, GNUTLS_NAME_DNS, host, strlen(host));
	/* Chain (and, as the client, name) checked in the handshake. */
	gnutls_session_set_verify_cert(s, server ? NULL : host, 0);
	t->fd = fd;
	gnutls_transport_set_ptr(s, t);
	gnutls_transport_set_vec_push_function(s, tls_push);
	gnutls_transport_set_pull_function(s, tls_pull);
	gnutls_transport_set_pull_timeout_function(s, tls_pull_timeout);
	gnutls_handshake_set_timeout(s, MIG_IO_TIMEOUT_S * 1000);
	do
		rc = gnutls_handshake(s);
	while (rc == GNUTLS_E_INTERRUPTED);
	if (rc < 0) {
		handshake_err(c, rc);
		if (rc != GNUTLS_E_FATAL_ALERT_RECEIVED)
			gnutls_alert_send_appropriate(s, rc);
		goto fail;
	}
	return 0;
fail:
	c->fd = -1;			/* the caller's to close */
	mig_conn_close(c);
	return -1;
}

/* The peer certificate's subject and the session's suite, for the log. */
void mig_tls_peer(struct mig_conn *c, char *buf, size_t len)
{
	const gnutls_datum_t *certs;
	gnutls_datum_t dn = { NULL, 0 };
	gnutls_x509_crt_t crt;
	char *desc = c->tls ? gnutls_session_get_desc(sess(c)) : NULL;
	unsigned n = 0;

	snprintf(buf, len, "%s, certificate '?'", desc ? desc : "?");
	gnutls_free(desc);
	certs = c->tls ? gnutls_certificate_get_peers(sess(c), &n) : NULL;
	if (!n || gnutls_x509_crt_init(&crt) < 0)
		return;
	if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) == 0 &&
	    gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0) {
		size_t at = strlen(buf) - 2;	/* over "?'" */

		snprintf(buf + at, len - at, "%s'", (char *)dn.data);
		gnutls_free(dn.data);
	}
	gnutls_x509_crt_deinit(crt);
}

int mig_tls_client(struct mig_conn *c, int fd, const char *host)
{
	return handshake(c, fd, false, host);
}

int mig_tls_server(struct mig_conn *c, int fd)
{
	return handshake(c, fd, true, NULL);
}
