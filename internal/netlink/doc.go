// Package netlink speaks route netlink (NETLINK_ROUTE) to the kernel: dumps
// and requests over one socket, with links, addresses, routes and network
// namespace ids as typed messages and their attributes parsed and built
// here. A Conn talks to the network namespace its socket was made in; to
// reach another one, make the socket on a thread that has entered it
// (sys.InNetNS). Kernel errors come back as *Error, which wraps the errno
// and carries the kernel's extended acknowledgement message, if any.
package netlink
