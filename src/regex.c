#include "config.h"

#include "regex.h"
