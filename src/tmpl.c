#include "config.h"

#include "tmpl.h"
