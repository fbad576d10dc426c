/* The process role, for ASSERT_MASTER and ASSERT_WORKER: set to ROLE_WORKER by the master
 * in the child of each fork, before worker_run. */
#include "config.h"

#include "heritage.h"

enum process_role process_role = ROLE_MASTER;
