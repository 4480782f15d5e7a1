// The original stack as a baseline: a socket.io 4 chat server with daehwa's rooms and
// `chat` event, WebSocket transport only, no storage and no auth (like the ceiling).
//
//   node server.js [--port 0]
//
// A client joins rooms with `join {chatSeq}` (answered by `joined {chatSeq}`) and sends
// `chat {chatSeq, content, clientMsgId}`; every member of the room, the sender
// included, gets `chat {msgId, chatSeq, senderId, senderName, content, createdAt,
// clientMsgId}` with `msgId` counting up per room, as daehwa does.
"use strict";

const http = require("http");
const { Server } = require("socket.io");

const portArg = process.argv.indexOf("--port");
const port = portArg > 0 ? Number(process.argv[portArg + 1]) : 0;

const httpServer = http.createServer();
const io = new Server(httpServer, {
  transports: ["websocket"],
  serveClient: false,
  perMessageDeflate: false,
});

/** The newest msgId of each room. */
const lastMsgId = new Map();
let nextSenderId = 1;

io.on("connection", (socket) => {
  const senderId = nextSenderId++;
  const senderName = String(socket.handshake.query.user || `user${senderId}`);
  socket.on("join", (data) => {
    const room = String(data && data.chatSeq);
    socket.join(room);
    socket.emit("joined", { chatSeq: data.chatSeq });
  });
  socket.on("chat", (data) => {
    const room = String(data && data.chatSeq);
    if (!socket.rooms.has(room) || typeof data.content !== "string") {
      socket.emit("error", { error: "not_member", message: "join the room first" });
      return;
    }
    const msgId = (lastMsgId.get(room) || 0) + 1;
    lastMsgId.set(room, msgId);
    const message = {
      msgId,
      chatSeq: data.chatSeq,
      senderId,
      senderName,
      content: data.content,
      createdAt: new Date().toISOString(),
    };
    if (data.clientMsgId !== undefined) message.clientMsgId = data.clientMsgId;
    io.to(room).emit("chat", message);
  });
});

httpServer.listen(port, "127.0.0.1", () => {
  console.error(`listening addr=127.0.0.1:${httpServer.address().port}`);
});

const stop = () => io.close(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
