const Koa = require('koa');
const app = new Koa();
app.use((ctx) => {
  ctx.body = 'koa here';
});
module.exports = app;
