export { createHttp1Handler, type Http1Handler } from './http1-handler.js';
export { registerForGateway } from './service-registry.js';
