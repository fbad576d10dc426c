#include "config.h"

#include "errordoc.h"
