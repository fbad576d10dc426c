#include "config.h"

#include "route_match.h"
