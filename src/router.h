/* Dispatch: placeholder */
#ifndef PERCORE_ROUTER_H
#define PERCORE_ROUTER_H
#endif
