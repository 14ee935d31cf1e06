/* SPDX-License-Identifier: MIT */
/*
 * libiocp: I/O completion ports on every platform.  Users include only this
 * header; it pulls in the public API and nothing of the platform's.
 */
#ifndef IOCP_H
#define IOCP_H

#include "iocp/types.h"
#include "iocp/error.h"
#include "iocp/version.h"
#include "iocp/engine.h"
#include "iocp/conn.h"
#include "iocp/server.h"
#include "iocp/proxy.h"
#include "iocp/client.h"
#include "iocp/stats.h"
#include "iocp/pipe.h"
#include "iocp/timer.h"
#include "iocp/dgram.h"

#endif /* IOCP_H */
