// The arrows of CONVENTIONS.md: cli → client; api → domain → store; controllers → domain,
// runtime, router, build, logs; runtime/router/logs import only lib/. A cycle is a bug.
const leaf = (from, allowed) => ({
  name: `${from}-imports-only-${allowed.join('-')}`,
  severity: 'error',
  from: { path: `^src/${from}/` },
  to: { path: '^src/', pathNot: [`^src/${from}/`, ...allowed.map((a) => `^src/${a}/`)] },
});
module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', from: {}, to: { circular: true } },
    leaf('lib', []),
    leaf('runtime', ['lib']),
    leaf('router', ['lib']),
    leaf('logs', ['lib']),
    leaf('store', ['lib']),
    leaf('contract', ['lib']),
    leaf('client', ['contract', 'lib']),
    leaf('cli', ['client', 'lib']),
    leaf('domain', ['store', 'lib']),
    leaf('egress', ['lib']),
    leaf('addons', ['lib']),
    leaf('build', ['runtime', 'logs', 'egress', 'lib']),
    leaf('git', ['lib']),
    leaf('api', ['contract', 'domain', 'store', 'logs', 'git', 'lib']),
  ],
  options: { tsConfig: { fileName: 'tsconfig.json' }, doNotFollow: { path: 'node_modules' } },
};
