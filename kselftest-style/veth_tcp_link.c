// SPDX-License-Identifier: MIT
/* veth_tcp_link: veth_tcp restarted as veth_tcp_link.prerestart says. */
#include "veth_tcp.c"
