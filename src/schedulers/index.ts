/**
 * `jsparallel/schedulers`: what a scheme plugin is written against. A scheme is a function from the loads of the
 * candidate engines to an index (docs/schedulers.md); the scheduler that calls it sees the world only through
 * `SchedulerHost`.
 */
export { SchemeRegistry, leastload, lru, plainrandom, schemes, twobin, weighted } from './schemes.js'
export type { Random, Scheme } from './schemes.js'
export type { Clock, TimerHandle } from '../common/clock.js'
export type { ReplyHandling, ReplyOutcome, RequeueReason, SchedulerHost, SchedulerOptions, Task } from './task-scheduler.js'
