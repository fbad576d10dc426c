#include "config.h"

#include "router.h"
