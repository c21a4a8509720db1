/** jsparallel's public surface: everything a user imports, by name. Deep imports are blocked by package.json. */

export { Client } from './client/client.js'
export type { ClientOptions, QueueStatus, EngineQueueStatus } from './client/client.js'
export { LoadBalancedView } from './client/view.js'
export type { ParallelFunction } from './client/view.js'
export { DirectView } from './client/direct-view.js'
export type { DirectTargets, DirectValue, ScatterOptions } from './client/direct-view.js'
export { BroadcastView } from './client/broadcast-view.js'
export type { BroadcastOptions } from './client/broadcast-view.js'
export type { ExecuteReply } from './client/engine-state.js'
export { AsyncResult } from './client/async-result.js'
export { AsyncMapResult } from './client/map.js'
export type { ImapIterator } from './client/map.js'
export type { GetOptions, DisplayOutputsOptions, WithErrors } from './client/async-result.js'
export type { OutputGrouping } from './client/outputs.js'
export { AsyncHubResult } from './client/hub-result.js'
export type { TaskRecordView } from './client/records.js'
export type { ResultMetadata } from './client/task.js'
export type { WaitInteractiveOptions } from './client/progress.js'
export type { MapOptions, ImapOptions } from './client/chunks.js'
export type { LoadBalancedFlags, ViewFlags, DependencyInput, WireDependency, HasMsgIds } from './client/flags.js'
export { moduleFunction } from './client/functions.js'
export { registerSerializer } from './protocol/serializers.js'
export type { SerializerOptions } from './protocol/serializers.js'
export { depend, dependent, requires } from './client/dependent.js'
export type { WrappedFunction } from './client/functions.js'
export { Dependency } from './common/dependency.js'
export type { DependencyOptions } from './common/dependency.js'
export type { ModuleFunction } from './client/functions.js'
export type { TaskFunction } from './client/submit.js'
export { ClientClosedError } from './client/connection.js'

export {
  JsParallelError,
  ConfigError,
  ProtocolError,
  TimeoutError,
  HandshakeRefused,
  NoEnginesRegistered,
  RemoteError,
  CompositeError,
  TaskAborted,
  TaskTimeout,
  EngineError,
  PoisonTask,
  UnmetDependency,
  ImpossibleDependency,
  InvalidDependency,
} from './common/errors.js'
export type { ErrorContent } from './common/errors.js'
export type { Logger, LogLevel } from './common/log.js'
export type { ClientConnectionInfo, ProfileOptions } from './protocol/connection-file.js'
export { Cluster } from './cluster/cluster.js'
export type { ClusterOptions, ClusterEngine } from './cluster/cluster.js'
