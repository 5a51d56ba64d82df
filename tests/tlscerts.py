"""Test certificates for migration over TLS, made with GnuTLS's certtool
(gnutls-bin) the way QEMU's docs/system/tls.rst makes them, laid out as
a tls-creds-x509 directory: ca-cert.pem, server-cert.pem, server-key.pem,
client-cert.pem, client-key.pem.  ECDSA keys: quick to make."""
import os
import shutil
import subprocess


def certtool(*args):
    exe = shutil.which("certtool")
    if not exe:
        raise RuntimeError("certtool is missing: scripts/setup.sh installs "
                           "gnutls-bin")
    subprocess.run([exe, *args], check=True, capture_output=True)


def _template(path, lines):
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def _key(path):
    certtool("--generate-privkey", "--key-type=ecdsa", "--outfile", path)


class CA:
    """A self-signed CA in `root`; it issues server and client pairs."""

    def __init__(self, root, cn="xkvm test CA"):
        os.makedirs(root, exist_ok=True)
        self.root = root
        self.key = os.path.join(root, "ca-key.pem")
        self.cert = os.path.join(root, "ca-cert.pem")
        _key(self.key)
        tpl = _template(os.path.join(root, "ca.info"), [
            f'cn = "{cn}"', "ca", "cert_signing_key",
            "expiration_days = 30"])
        certtool("--generate-self-signed", "--load-privkey", self.key,
                 "--template", tpl, "--outfile", self.cert)
        self.serial = 1

    def issue(self, dst_dir, role, cn, ips=(), names=(), expired=False):
        """role-cert.pem and role-key.pem in dst_dir (role: server or
        client), for the given addresses and names (servers)."""
        os.makedirs(dst_dir, exist_ok=True)
        key = os.path.join(dst_dir, f"{role}-key.pem")
        cert = os.path.join(dst_dir, f"{role}-cert.pem")
        _key(key)
        self.serial += 1
        lines = [f'cn = "{cn}"', 'organization = "xkvm tests"',
                 f"serial = {self.serial}", "encryption_key", "signing_key",
                 "tls_www_server" if role == "server" else "tls_www_client"]
        lines += [f"ip_address = {ip}" for ip in ips]
        lines += [f'dns_name = "{n}"' for n in names]
        if expired:
            lines += ['activation_date = "2020-01-01 00:00:00"',
                      'expiration_date = "2020-02-01 00:00:00"']
        else:
            lines += ["expiration_days = 30"]
        tpl = _template(os.path.join(dst_dir, f"{role}.info"), lines)
        certtool("--generate-certificate", "--load-privkey", key,
                 "--load-ca-certificate", self.cert,
                 "--load-ca-privkey", self.key, "--template", tpl,
                 "--outfile", cert)
        os.unlink(tpl)

    def creds_dir(self, path, server=None, client=None, expired=False):
        """A tls-creds-x509 directory trusting this CA: with a server
        pair for `server` (a list of addresses), a client pair named
        `client` (None: no client pair)."""
        os.makedirs(path, exist_ok=True)
        shutil.copy(self.cert, os.path.join(path, "ca-cert.pem"))
        if server is not None:
            self.issue(path, "server", f"dest {server[0]}", ips=server,
                       names=["localhost"])
        if client is not None:
            self.issue(path, "client", client, expired=expired)
        return path
