/* echo_server.h — private to tools/: the echo server of echo_server.c,
 * which nuproc-bench's echo_server and echo scenarios also run. */
#ifndef NU_ECHO_SERVER_H
#define NU_ECHO_SERVER_H

/* A TCP socket listening on 127.0.0.1:port; the fd, or -1 with errno. */
int echo_listen(int port);

/* A process body: accept on the listening socket (int)(intptr_t)arg and
 * spawn one process per connection, which echoes what it reads until EOF
 * or an error, then closes its socket. Returns only when accept fails for
 * good (a bad or closed listening socket). */
void echo_acceptor(void *arg);

#endif
