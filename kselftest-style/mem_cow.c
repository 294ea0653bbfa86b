// SPDX-License-Identifier: MIT
/*
 * mem_cow: mem_precopy's subject (a thread rewriting random pages of a
 * 64 MiB region, generations kept apart), checkpointed with
 * --leave-running --copy-on-write: the memory is read from a copy forked
 * while the process was frozen, after it runs on and rewrites pages. After
 * restart every page must agree with the generation array of the freeze.
 */
#include "mem_precopy.c"
