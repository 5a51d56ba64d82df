"""What the migration tests share (test_migration.py, test_migration_tls.py,
test_liveupdate.py's listener test): a daemon that accepts migrations on
loopback, `xl migrate` and its progress, the one-side check, and a proxy
that forwards the connections of a migration and cuts one of them at a
chosen point (docs/migration.md, "Tests")."""
import json
import os
import socket
import threading

from harness import XEN, Daemon, free_port, scaled, wait_until


class Host:
    """A daemon that accepts migrations on 127.0.0.1:port (plain TCP,
    --migrate-insecure: loopback only)."""

    def __init__(self, root, binary=XEN):
        os.makedirs(root)
        self.port = free_port()
        self.d = Daemon(root, binary=binary, extra_args=[
            "--migrate-listen", f"127.0.0.1:{self.port}",
            "--migrate-insecure"])
        self.d.start()
        self.addr = f"127.0.0.1:{self.port}"


def migrate(src, dst_addr, dom, *opts, insecure=True, check=True,
            timeout=120):
    """xl migrate --json on src's daemon; its report, or (check=False)
    the finished process."""
    sec = ("--insecure",) if insecure else ()
    r = src.d.xl("migrate", *sec, "--json", *opts, dom, dst_addr,
                 check=False, timeout=timeout)
    if check:
        assert r.returncode == 0, r.err + r.out
        return json.loads(r.out)
    return r


def start_migrate(src, dst_addr, dom, *opts, insecure=True):
    sec = ("--insecure",) if insecure else ()
    return src.d.xl_popen("migrate", *sec, "--json", *opts, dom, dst_addr)


def wait_exit(proc, timeout=120):
    """The exit code, once the output is all read (p.err then holds it)."""
    return proc.wait_exit(timeout)


def wait_phase(src, dom, phases, timeout=60):
    def ok():
        try:
            st = src.d.call("migrate-status", domain=dom)
        except Exception:
            return None
        return st if st["phase"] in phases else None
    return wait_until(ok, scaled(timeout), f"migration phase in {phases}")


def assert_only_on(here, there, name):
    """name runs on here's daemon and does not exist on there's."""
    assert name in here.d.domains(), here.d.log()[-2000:]
    assert here.d.domains()[name]["state"] == "running"
    assert name not in there.d.domains(), there.d.log()[-2000:]


def wait_dropped(host, name):
    """The destination drops its half-built domain (it may still be
    reading when the source has given up)."""
    wait_until(lambda: name not in host.d.domains() or None, scaled(30),
               "the destination dropping its half-built domain")


class Cut:
    """Where a Proxy cuts its connection, on both sides at once:

    * src_bytes=N: after N bytes from the source;
    * go_bytes=K: once the destination's READY has passed, after K more
      bytes from the source (GO is 3: 0..2 cut it, 3 passes it);
    * answer_bytes=K: once READY has passed, after K bytes more from the
      destination (its RUNNING line: the answer to GO).

    The last two read the protocol's lines, so they are for plain TCP."""

    def __init__(self, src_bytes=None, go_bytes=None, answer_bytes=None):
        self.src_bytes = src_bytes
        self.go_bytes = go_bytes
        self.answer_bytes = answer_bytes

    def __repr__(self):
        return "Cut(" + ", ".join(f"{k}={v}" for k, v in vars(self).items()
                                  if v is not None) + ")"


class Proxy:
    """Listens on host and forwards every connection to host:port (a
    migration with --connections N makes N, a source that asks after a
    lost answer one more); connection number `which` (0: the first, the
    main one) is cut as `cut` says.  It makes its sockets in the
    namespace of the thread that creates it (test_migration_tls.py makes
    it in the destination's).  After a migration: src_bytes is what the
    cut connection carried from the source, was_cut whether the cut
    happened, saw_ready whether the destination said READY on it."""

    def __init__(self, port, cut=None, which=0, host="127.0.0.1"):
        self.lsn = socket.socket()
        self.lsn.bind((host, 0))
        self.lsn.listen(16)
        self.addr = f"{host}:{self.lsn.getsockname()[1]}"
        self.host, self.port, self.which = host, port, which
        self.cut = cut or Cut()
        self.count = 0
        self.src_bytes = 0
        self.saw_ready = False
        self.was_cut = threading.Event()
        self.lock = threading.Lock()
        self.threads = []
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while True:
            try:
                c, _ = self.lsn.accept()
            except OSError:
                return
            try:
                u = socket.create_connection((self.host, self.port))
            except OSError:
                c.close()
                continue
            mine = self.count == self.which
            self.count += 1
            t = threading.Thread(target=self.pipe, args=(c, u, mine),
                                 daemon=True)
            self.threads.append(t)
            t.start()

    def pipe(self, c, u, mine):
        cut = self.cut if mine else Cut()
        done = threading.Event()
        st = {"src": 0, "src_limit": cut.src_bytes, "back_limit": None,
              "back": 0}
        tail = b""

        def shut():
            if mine and not done.is_set():
                self.was_cut.set()
            done.set()
            for s in (c, u):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        def back():
            nonlocal tail
            try:
                while not done.is_set():
                    data = u.recv(65536)
                    if not data:
                        break
                    if mine and not self.saw_ready:
                        i = (tail + data).find(b"READY\n")
                        if i >= 0:
                            # Limits first: the source answers READY
                            # with GO as soon as it has it.
                            end = i + 6 - len(tail)
                            with self.lock:
                                self.saw_ready = True
                                if cut.go_bytes is not None:
                                    st["src_limit"] = (st["src"] +
                                                       cut.go_bytes)
                            if cut.answer_bytes is not None:
                                st["back_limit"] = (st["back"] + end +
                                                    cut.answer_bytes)
                        tail = (tail + data)[-6:]
                    lim = st["back_limit"]
                    if lim is not None and st["back"] + len(data) >= lim:
                        c.sendall(data[:lim - st["back"]])
                        st["back"] = lim
                        shut()
                        return
                    c.sendall(data)
                    st["back"] += len(data)
            except OSError:
                pass
            done.set()

        bt = threading.Thread(target=back, daemon=True)
        bt.start()
        try:
            while not done.is_set():
                with self.lock:
                    lim = st["src_limit"]
                if lim is not None and st["src"] >= lim:
                    shut()
                    break
                data = c.recv(65536 if lim is None
                              else max(1, min(65536, lim - st["src"])))
                if not data:
                    break
                with self.lock:
                    lim = st["src_limit"]
                if lim is not None and st["src"] + len(data) > lim:
                    data = data[:lim - st["src"]]
                u.sendall(data)
                st["src"] += len(data)
                if mine:
                    self.src_bytes = st["src"]
        except OSError:
            pass
        done.set()
        bt.join(scaled(30))
        for s in (c, u):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        """Stop accepting and wait for the connections to end."""
        try:
            self.lsn.shutdown(socket.SHUT_RDWR)    # wakes accept()
        except OSError:
            pass
        self.lsn.close()
        self.t.join(scaled(30))
        for t in self.threads:
            t.join(scaled(30))
