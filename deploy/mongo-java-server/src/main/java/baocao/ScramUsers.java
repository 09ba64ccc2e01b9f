package baocao;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.util.Base64;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The users the server accepts, read once at start from a file written by deploy/stack.py.
 * One user a line, fields separated by spaces, '#' starts a comment:
 *
 * <pre>NAME SCRAM-SHA-256 ITERATIONS SALT STORED_KEY SERVER_KEY</pre>
 *
 * SALT, STORED_KEY and SERVER_KEY in base64 (RFC 5802: StoredKey = H(ClientKey), ServerKey =
 * HMAC(SaltedPassword, "Server Key")). The file holds no password, but a stored key lets whoever
 * reads it impersonate the server to a client, so it must be readable by its owner only: a file
 * that group or others may read is refused, as is a file without users.
 */
final class ScramUsers {

    static final String MECHANISM = "SCRAM-SHA-256";
    /** RFC 7677's minimum. */
    static final int MIN_ITERATIONS = 4096;

    record User(String name, int iterations, byte[] salt, byte[] storedKey, byte[] serverKey) {}

    private final Map<String, User> users;

    private ScramUsers(Map<String, User> users) {
        this.users = users;
    }

    User find(String name) {
        return users.get(name);
    }

    int size() {
        return users.size();
    }

    static ScramUsers load(Path file) throws IOException {
        Set<PosixFilePermission> open = EnumSet.of(
            PosixFilePermission.GROUP_READ, PosixFilePermission.GROUP_WRITE,
            PosixFilePermission.OTHERS_READ, PosixFilePermission.OTHERS_WRITE);
        Set<PosixFilePermission> mode = Files.getPosixFilePermissions(file);
        mode.retainAll(open);
        if (!mode.isEmpty()) {
            throw new IOException(file + " may be read or written by group or others (" + mode
                + "); it must be owner-only (chmod 600)");
        }
        Base64.Decoder b64 = Base64.getDecoder();
        Map<String, User> users = new HashMap<>();
        List<String> lines = Files.readAllLines(file, StandardCharsets.UTF_8);
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i).strip();
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            String[] f = line.split("\\s+");
            String where = file + ":" + (i + 1);
            if (f.length != 6 || !MECHANISM.equals(f[1])) {
                throw new IOException(where + ": expected NAME " + MECHANISM + " ITERATIONS SALT STORED_KEY SERVER_KEY");
            }
            int iterations;
            try {
                iterations = Integer.parseInt(f[2]);
            } catch (NumberFormatException e) {
                throw new IOException(where + ": iterations is not a number");
            }
            if (iterations < MIN_ITERATIONS) {
                throw new IOException(where + ": at least " + MIN_ITERATIONS + " iterations are required");
            }
            User user;
            try {
                user = new User(f[0], iterations, b64.decode(f[3]), b64.decode(f[4]), b64.decode(f[5]));
            } catch (IllegalArgumentException e) {
                throw new IOException(where + ": " + e.getMessage());
            }
            if (user.storedKey().length != 32 || user.serverKey().length != 32 || user.salt().length < 16) {
                throw new IOException(where + ": keys of 32 bytes and a salt of 16 or more bytes are required");
            }
            if (users.put(user.name(), user) != null) {
                throw new IOException(where + ": user " + user.name() + " is defined twice");
            }
        }
        if (users.isEmpty()) {
            throw new IOException(file + " defines no user; the server does not run without authentication");
        }
        return new ScramUsers(Map.copyOf(users));
    }
}
