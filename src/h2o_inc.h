/* The one way to include libh2o: the evloop flavour must be selected before any h2o header. */
#ifndef PERCORE_H2O_INC_H
#define PERCORE_H2O_INC_H

#define H2O_USE_LIBUV 0
#include <h2o.h>
#include <h2o/http1.h>
#include <h2o/http2.h>

#endif
