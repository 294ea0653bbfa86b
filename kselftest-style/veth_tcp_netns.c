// SPDX-License-Identifier: MIT
/* veth_tcp_netns: veth_tcp restarted as veth_tcp_netns.prerestart says. */
#include "veth_tcp.c"
