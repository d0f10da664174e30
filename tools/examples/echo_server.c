/* echo_server.c — a TCP echo server, one nuproc process per connection,
 * written with the plain POSIX calls: inside a process, nuproc turns
 * accept, read and send into io_uring submissions and parks the process
 * until they complete, so each connection reads like blocking code.
 *
 *   echo_server PORT       listen on 127.0.0.1:PORT, echo until killed
 *
 * nuproc-bench's echo_server and echo scenarios run this same code (built
 * with -DNUPROC_BENCH, which leaves out main; see echo_server.h). Build:
 *   cc -O2 echo_server.c $(pkg-config --static --cflags --libs nuproc) -o echo_server
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nuproc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "echo_server.h"

/* One connection: read, send it all back, until EOF or an error. send,
 * not write: with MSG_NOSIGNAL a peer that has gone gives EPIPE here
 * instead of a SIGPIPE that would end the whole node. */
static void echo_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[4096];
	ssize_t n;
	nu_mem_populate(buf, sizeof(buf)); /* the kernel writes here */
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t off = 0, w; off < n; off += w)
			if ((w = send(fd, buf + off, (size_t)(n - off),
				      MSG_NOSIGNAL)) < 0)
				goto out;
	}
out:
	close(fd);
}

void echo_acceptor(void *arg)
{
	int lfd = (int)(intptr_t)arg, one = 1;
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0 && (errno == EMFILE || errno == ENFILE)) {
			nu_sleep(10); /* out of fds: let connections close */
			continue;
		}
		if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
			continue;
		if (fd < 0) { /* the listening socket is unusable */
			perror("echo_server: accept");
			return;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (nu_spawn(echo_conn, (void *)(intptr_t)fd) < 0)
			close(fd);
	}
}

int echo_listen(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 4096)) {
		int err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

#ifndef NUPROC_BENCH /* nuproc-bench has its own main */
int main(int argc, char **argv)
{
	int port = argc == 2 ? atoi(argv[1]) : 0, lfd;
	if (port < 1 || port > 65535) {
		fprintf(stderr, "usage: echo_server PORT\n");
		return 2;
	}
	if ((lfd = echo_listen(port)) < 0) {
		perror("echo_server: listen");
		return 1;
	}
	int rc = nu_start(NULL, echo_acceptor, (void *)(intptr_t)lfd);
	if (rc < 0)
		fprintf(stderr, "echo_server: %s\n", nu_strerror(rc));
	return rc != 0;
}
#endif
