/* LD_PRELOAD shim for bench/rtt.sh: every socket a server accepts gets TCP_NODELAY, so
 * its second small write is not held by Nagle until the client has acknowledged the
 * first. OpenSSH's sshd sets it only for sessions with a terminal; started under this
 * shim it shows which of an SFTP check's round trips are sshd's writes and which are the
 * protocol's. Used for measuring only, never by authprobe or its tests.
 *
 *   gcc -shared -fPIC -O2 -o nodelay.so bench/nodelay.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

static void no_delay(int fd) {
    int on = 1;
    if (fd >= 0) {
        /* Not a TCP socket (a Unix socket): the call fails and nothing changes. */
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    }
}

int accept(int fd, struct sockaddr *addr, socklen_t *len) {
    int (*real)(int, struct sockaddr *, socklen_t *) =
        (int (*)(int, struct sockaddr *, socklen_t *))dlsym(RTLD_NEXT, "accept");
    int accepted = real(fd, addr, len);
    no_delay(accepted);
    return accepted;
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags) {
    int (*real)(int, struct sockaddr *, socklen_t *, int) =
        (int (*)(int, struct sockaddr *, socklen_t *, int))dlsym(RTLD_NEXT, "accept4");
    int accepted = real(fd, addr, len, flags);
    no_delay(accepted);
    return accepted;
}
