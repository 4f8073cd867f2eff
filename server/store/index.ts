// The data access face: one file per table group; every function takes the Db (or transaction) it runs on.
export * from './users';
export * from './tokens';
export * from './tenants';
export * from './repos';
export * from './members';
export * from './pushes';
export * from './keys';
export * from './events';
export * from './webhooks';
export * from './pipelines';
export * from './runs';
export * from './composes';
export * from './archive';
