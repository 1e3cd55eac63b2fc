/**
 * The JSON gateway's routes as etcd 3.4 declares them (google.api.http options of its protos):
 * URL path after the version prefix → gRPC method. Maintenance HashKV and Auth status have no
 * route in 3.4, so they answer 404 as etcd does.
 */
export interface GatewayRoute {
  readonly grpcPath: string;
  /**
   * Whether the end of the request body half-closes the call. etcd's watch keeps streaming after
   * the client stops sending (curl -d closes the body at once); a keep-alive stream ends.
   */
  readonly isEndedByBodyEnd: boolean;
}

/** etcd 3.4 serves every route under both prefixes. */
export const GATEWAY_PREFIXES: readonly string[] = ['/v3/', '/v3beta/'];

const KV = '/etcdserverpb.KV/';
const LEASE = '/etcdserverpb.Lease/';
const CLUSTER = '/etcdserverpb.Cluster/';
const MAINTENANCE = '/etcdserverpb.Maintenance/';
const AUTH = '/etcdserverpb.Auth/';
const LOCK = '/v3lockpb.Lock/';
const ELECTION = '/v3electionpb.Election/';

const TABLE: readonly (readonly [string, string])[] = [
  ['kv/range', `${KV}Range`],
  ['kv/put', `${KV}Put`],
  ['kv/deleterange', `${KV}DeleteRange`],
  ['kv/txn', `${KV}Txn`],
  ['kv/compaction', `${KV}Compact`],
  ['watch', '/etcdserverpb.Watch/Watch'],
  ['lease/grant', `${LEASE}LeaseGrant`],
  ['lease/revoke', `${LEASE}LeaseRevoke`],
  ['kv/lease/revoke', `${LEASE}LeaseRevoke`],
  ['lease/keepalive', `${LEASE}LeaseKeepAlive`],
  ['lease/timetolive', `${LEASE}LeaseTimeToLive`],
  ['kv/lease/timetolive', `${LEASE}LeaseTimeToLive`],
  ['lease/leases', `${LEASE}LeaseLeases`],
  ['kv/lease/leases', `${LEASE}LeaseLeases`],
  ['cluster/member/add', `${CLUSTER}MemberAdd`],
  ['cluster/member/remove', `${CLUSTER}MemberRemove`],
  ['cluster/member/update', `${CLUSTER}MemberUpdate`],
  ['cluster/member/list', `${CLUSTER}MemberList`],
  ['cluster/member/promote', `${CLUSTER}MemberPromote`],
  ['maintenance/alarm', `${MAINTENANCE}Alarm`],
  ['maintenance/status', `${MAINTENANCE}Status`],
  ['maintenance/defragment', `${MAINTENANCE}Defragment`],
  ['maintenance/hash', `${MAINTENANCE}Hash`],
  ['maintenance/snapshot', `${MAINTENANCE}Snapshot`],
  ['maintenance/transfer-leadership', `${MAINTENANCE}MoveLeader`],
  ['auth/enable', `${AUTH}AuthEnable`],
  ['auth/disable', `${AUTH}AuthDisable`],
  ['auth/authenticate', `${AUTH}Authenticate`],
  ['auth/user/add', `${AUTH}UserAdd`],
  ['auth/user/get', `${AUTH}UserGet`],
  ['auth/user/list', `${AUTH}UserList`],
  ['auth/user/delete', `${AUTH}UserDelete`],
  ['auth/user/changepw', `${AUTH}UserChangePassword`],
  ['auth/user/grant', `${AUTH}UserGrantRole`],
  ['auth/user/revoke', `${AUTH}UserRevokeRole`],
  ['auth/role/add', `${AUTH}RoleAdd`],
  ['auth/role/get', `${AUTH}RoleGet`],
  ['auth/role/list', `${AUTH}RoleList`],
  ['auth/role/delete', `${AUTH}RoleDelete`],
  ['auth/role/grant', `${AUTH}RoleGrantPermission`],
  ['auth/role/revoke', `${AUTH}RoleRevokePermission`],
  ['lock/lock', `${LOCK}Lock`],
  ['lock/unlock', `${LOCK}Unlock`],
  ['election/campaign', `${ELECTION}Campaign`],
  ['election/proclaim', `${ELECTION}Proclaim`],
  ['election/leader', `${ELECTION}Leader`],
  ['election/observe', `${ELECTION}Observe`],
  ['election/resign', `${ELECTION}Resign`],
];

const ROUTES = new Map<string, GatewayRoute>(
  TABLE.map(([path, grpcPath]) => [
    path,
    { grpcPath, isEndedByBodyEnd: grpcPath !== '/etcdserverpb.Watch/Watch' },
  ]),
);

/** The route of a path below a gateway prefix ("kv/range"), if etcd has one. */
export function gatewayRoute(pathBelowPrefix: string): GatewayRoute | undefined {
  return ROUTES.get(pathBelowPrefix);
}
