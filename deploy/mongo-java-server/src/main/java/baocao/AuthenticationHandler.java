package baocao;

import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.Base64;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;

import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import de.bwaldvogel.mongo.bson.BinData;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.wire.message.ClientRequest;
import de.bwaldvogel.mongo.wire.message.MessageHeader;
import de.bwaldvogel.mongo.wire.message.MongoMessage;
import de.bwaldvogel.mongo.wire.message.MongoQuery;
import de.bwaldvogel.mongo.wire.message.MongoReply;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;

/**
 * Sits between the wire decoder and mongo-java-server's database handler, one instance per
 * connection. Until the connection has completed a SCRAM-SHA-256 conversation (RFC 5802 / 7677,
 * the saslStart and saslContinue commands, as MongoDB speaks them) it lets through only the
 * handshake (hello, isMaster), which reveals no data, answers the SASL commands itself and refuses
 * everything else with error 13 (Unauthorized): no read, write, ping or server status. Once
 * authenticated, every request passes unchanged: any user has every right.
 *
 * An unknown user gets a salt derived from its name and a per-process key, so the conversation
 * looks like a known user's and fails only at the proof: a client cannot learn which names exist.
 */
final class AuthenticationHandler extends ChannelInboundHandlerAdapter {

    private static final Logger log = LoggerFactory.getLogger(AuthenticationHandler.class);

    private static final Set<String> HANDSHAKE = Set.of("hello", "isMaster", "ismaster");
    private static final SecureRandom RANDOM = new SecureRandom();
    private static final byte[] FAKE_SALT_KEY = randomBytes(32);
    private static final AtomicInteger RESPONSE_IDS = new AtomicInteger();
    private static final int CONVERSATION_ID = 1;

    private final ScramUsers users;
    private String user;
    private Conversation conversation;

    AuthenticationHandler(ScramUsers users) {
        this.users = users;
    }

    /** The server's side of one SCRAM exchange, between saslStart and its last saslContinue. */
    private static final class Conversation {
        String userName;
        ScramUsers.User user; // null for an unknown name
        String gs2Header;
        String clientFirstBare;
        String serverFirst;
        String nonce;
        boolean skipEmptyExchange;
        boolean proven; // the client's proof was right; waiting for the empty last message
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) throws Exception {
        if (!(msg instanceof ClientRequest request)) {
            ctx.fireChannelRead(msg);
            return;
        }
        Document command = commandOf(request);
        String name = command == null || command.isEmpty() ? "" : command.keySet().iterator().next();
        if ("saslStart".equals(name) || "saslContinue".equals(name)) {
            Document answer;
            try {
                answer = "saslStart".equals(name) ? saslStart(command) : saslContinue(command);
            } catch (AuthenticationFailed e) {
                log.warn("authentication failed for {} from {}: {}", conversation == null ? "?" : conversation.userName,
                    ctx.channel().remoteAddress(), e.getMessage());
                conversation = null;
                answer = error(18, "AuthenticationFailed", "Authentication failed.");
            }
            reply(ctx, request, answer);
            return;
        }
        if (user != null || HANDSHAKE.contains(name)) {
            ctx.fireChannelRead(msg);
            return;
        }
        String what = name.isEmpty() ? "this request" : "command " + name;
        reply(ctx, request, error(13, "Unauthorized", what + " requires authentication"));
    }

    /** The command document of a request, or null when it is not a command (a legacy query). */
    private static Document commandOf(ClientRequest request) {
        if (request instanceof MongoMessage message) {
            return message.getDocument();
        }
        if (request instanceof MongoQuery query && "$cmd".equals(query.getCollectionName())) {
            Document q = query.getQuery();
            if (!q.isEmpty() && "$query".equals(q.keySet().iterator().next()) && q.get("$query") instanceof Document inner) {
                return inner;
            }
            return q;
        }
        return null;
    }

    private static void reply(ChannelHandlerContext ctx, ClientRequest request, Document answer) {
        MessageHeader header = new MessageHeader(RESPONSE_IDS.incrementAndGet(), request.getHeader().getRequestID());
        if (request instanceof MongoMessage) {
            ctx.writeAndFlush(new MongoMessage(ctx.channel(), header, answer));
        } else {
            ctx.writeAndFlush(new MongoReply(header, answer));
        }
    }

    private static Document error(int code, String codeName, String message) {
        Document doc = new Document();
        doc.put("ok", 0.0);
        doc.put("errmsg", message);
        doc.put("code", code);
        doc.put("codeName", codeName);
        return doc;
    }

    private static final class AuthenticationFailed extends Exception {
        AuthenticationFailed(String message) {
            super(message);
        }
    }

    // ------------------------------------------------------------------ SCRAM-SHA-256

    private Document saslStart(Document command) throws AuthenticationFailed {
        conversation = null;
        Object mechanism = command.get("mechanism");
        if (!ScramUsers.MECHANISM.equals(mechanism)) {
            // Not a failed login: the client asked for something this server does not offer.
            Document doc = error(334, "MechanismUnavailable",
                "Received authentication for mechanism " + mechanism + " which is not enabled; use "
                    + ScramUsers.MECHANISM + " (authMechanism=" + ScramUsers.MECHANISM + ")");
            return doc;
        }
        String clientFirst = payload(command);
        Conversation c = new Conversation();
        conversation = c;
        // gs2-header: "n,," or "y,," (no channel binding), no authorization identity.
        int second = clientFirst.indexOf(',', clientFirst.indexOf(',') + 1);
        if (second < 0) {
            throw new AuthenticationFailed("malformed client-first-message");
        }
        c.gs2Header = clientFirst.substring(0, second + 1);
        if (!c.gs2Header.equals("n,,") && !c.gs2Header.equals("y,,")) {
            throw new AuthenticationFailed("channel binding or an authorization identity was asked for");
        }
        c.clientFirstBare = clientFirst.substring(second + 1);
        String[] attrs = c.clientFirstBare.split(",", -1);
        if (attrs.length < 2 || !attrs[0].startsWith("n=") || !attrs[1].startsWith("r=") || attrs[1].length() < 10) {
            throw new AuthenticationFailed("malformed client-first-message");
        }
        c.userName = decodeName(attrs[0].substring(2));
        c.user = users.find(c.userName);
        Object options = command.get("options");
        c.skipEmptyExchange = options instanceof Document o && Boolean.TRUE.equals(o.get("skipEmptyExchange"));
        byte[] salt;
        int iterations;
        if (c.user != null) {
            salt = c.user.salt();
            iterations = c.user.iterations();
        } else {
            salt = java.util.Arrays.copyOf(hmac(FAKE_SALT_KEY, c.userName.getBytes(StandardCharsets.UTF_8)), 16);
            iterations = 15000;
        }
        c.nonce = attrs[1].substring(2) + Base64.getEncoder().encodeToString(randomBytes(24));
        c.serverFirst = "r=" + c.nonce + ",s=" + Base64.getEncoder().encodeToString(salt) + ",i=" + iterations;
        return saslAnswer(false, c.serverFirst);
    }

    private Document saslContinue(Document command) throws AuthenticationFailed {
        Conversation c = conversation;
        if (c == null) {
            throw new AuthenticationFailed("saslContinue without a conversation");
        }
        if (!(command.get("conversationId") instanceof Number id) || id.intValue() != CONVERSATION_ID) {
            throw new AuthenticationFailed("unknown conversationId");
        }
        String message = payload(command);
        if (c.proven) {
            // The last, empty round of a client that did not ask to skip it.
            if (!message.isEmpty()) {
                throw new AuthenticationFailed("unexpected message after the server's signature");
            }
            return authenticated(c, "");
        }
        int at = message.lastIndexOf(",p=");
        if (at < 0) {
            throw new AuthenticationFailed("client-final-message without a proof");
        }
        String withoutProof = message.substring(0, at);
        String[] attrs = withoutProof.split(",", -1);
        String binding = "c=" + Base64.getEncoder().encodeToString(c.gs2Header.getBytes(StandardCharsets.UTF_8));
        if (attrs.length < 2 || !attrs[0].equals(binding) || !attrs[1].equals("r=" + c.nonce)) {
            throw new AuthenticationFailed("channel binding or nonce do not match");
        }
        byte[] proof;
        try {
            proof = Base64.getDecoder().decode(message.substring(at + 3));
        } catch (IllegalArgumentException e) {
            throw new AuthenticationFailed("proof is not base64");
        }
        if (c.user == null || proof.length != 32) {
            throw new AuthenticationFailed(c.user == null ? "unknown user" : "proof of the wrong length");
        }
        byte[] authMessage = (c.clientFirstBare + "," + c.serverFirst + "," + withoutProof).getBytes(StandardCharsets.UTF_8);
        byte[] clientSignature = hmac(c.user.storedKey(), authMessage);
        byte[] clientKey = new byte[32];
        for (int i = 0; i < 32; i++) {
            clientKey[i] = (byte) (proof[i] ^ clientSignature[i]);
        }
        if (!MessageDigest.isEqual(sha256(clientKey), c.user.storedKey())) {
            throw new AuthenticationFailed("wrong password");
        }
        String serverFinal = "v=" + Base64.getEncoder().encodeToString(hmac(c.user.serverKey(), authMessage));
        if (c.skipEmptyExchange) {
            return authenticated(c, serverFinal);
        }
        c.proven = true;
        return saslAnswer(false, serverFinal);
    }

    private Document authenticated(Conversation c, String payload) {
        user = c.userName;
        conversation = null;
        return saslAnswer(true, payload);
    }

    private static Document saslAnswer(boolean done, String payload) {
        Document doc = new Document();
        doc.put("conversationId", CONVERSATION_ID);
        doc.put("done", done);
        doc.put("payload", new BinData(payload.getBytes(StandardCharsets.UTF_8)));
        doc.put("ok", 1.0);
        return doc;
    }

    private static String payload(Document command) throws AuthenticationFailed {
        Object payload = command.get("payload");
        if (payload instanceof BinData bin) {
            return new String(bin.getData(), StandardCharsets.UTF_8);
        }
        if (payload instanceof String s) {
            return s;
        }
        throw new AuthenticationFailed("no payload");
    }

    /** saslname (RFC 5802): "=2C" stands for ',' and "=3D" for '='. */
    private static String decodeName(String name) throws AuthenticationFailed {
        String decoded = name.replace("=2C", ",").replace("=3D", "=");
        if (decoded.isEmpty() || name.replace("=2C", "").replace("=3D", "").contains("=")) {
            throw new AuthenticationFailed("malformed user name");
        }
        return decoded;
    }

    private static byte[] hmac(byte[] key, byte[] data) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(key, "HmacSHA256"));
            return mac.doFinal(data);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException(e);
        }
    }

    private static byte[] sha256(byte[] data) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(data);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException(e);
        }
    }

    private static byte[] randomBytes(int n) {
        byte[] b = new byte[n];
        RANDOM.nextBytes(b);
        return b;
    }
}
