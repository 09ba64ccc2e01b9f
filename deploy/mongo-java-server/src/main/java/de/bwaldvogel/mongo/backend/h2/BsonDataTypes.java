package de.bwaldvogel.mongo.backend.h2;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;

import org.h2.mvstore.DataUtils;
import org.h2.mvstore.WriteBuffer;
import org.h2.mvstore.type.BasicDataType;

import de.bwaldvogel.mongo.backend.KeyValue;
import de.bwaldvogel.mongo.backend.Missing;
import de.bwaldvogel.mongo.backend.ValueComparator;
import de.bwaldvogel.mongo.bson.Document;
import de.bwaldvogel.mongo.wire.bson.BsonDecoder;
import de.bwaldvogel.mongo.wire.bson.BsonEncoder;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;

/**
 * How documents and index keys are stored in the MVStore: as BSON, instead of H2's default, Java
 * serialization (documents as their bytes, by IdFirstH2Backend.IdFirstCollection; index keys by
 * KeyValueType). With the default, every document read or written went through
 * ObjectOutputStream/ObjectInputStream, and every comparison of two index keys during a lookup
 * serialized both keys (KeyValue is not Comparable): about three quarters of the server's CPU
 * when looking up documents by _id.
 */
final class BsonDataTypes {

    private BsonDataTypes() {}

    static byte[] encode(Document document) {
        ByteBuf buffer = Unpooled.buffer(256);
        try {
            BsonEncoder.encodeDocument(document, buffer);
            byte[] bytes = new byte[buffer.readableBytes()];
            buffer.readBytes(bytes);
            return bytes;
        } finally {
            buffer.release();
        }
    }

    static Document decode(byte[] bytes) {
        return BsonDecoder.decodeBson(Unpooled.wrappedBuffer(bytes));
    }

    static Document decode(ByteBuffer in) {
        byte[] bytes = new byte[DataUtils.readVarInt(in)];
        in.get(bytes);
        return decode(bytes);
    }

    /**
     * Keys of the unique indexes, ordered by MongoDB's value order, element by element. Two keys
     * that MongoDB takes for equal (1 and 1.0) compare equal, which is what a unique index needs.
     */
    static final class KeyValueType extends BasicDataType<KeyValue> {
        static final KeyValueType INSTANCE = new KeyValueType();
        private static final ValueComparator ORDER = ValueComparator.ascWithoutListHandling();
        private static final Document MISSING = new Document("\u0000baocao-missing", 1);

        @Override
        public int compare(KeyValue a, KeyValue b) {
            int n = Math.min(a.size(), b.size());
            for (int i = 0; i < n; i++) {
                int c = ORDER.compare(a.get(i), b.get(i));
                if (c != 0) {
                    return c;
                }
            }
            return Integer.compare(a.size(), b.size());
        }

        @Override
        public int getMemory(KeyValue key) {
            return 48 + 48 * key.size();
        }

        @Override
        public void write(WriteBuffer buff, KeyValue key) {
            List<Object> values = new ArrayList<>(key.size());
            for (Object value : key) {
                values.add(value instanceof Missing ? MISSING : value);  // BSON has no "missing"
            }
            byte[] bytes = encode(new Document("k", values));
            buff.putVarInt(bytes.length).put(bytes);
        }

        @Override
        public KeyValue read(ByteBuffer buff) {
            List<Object> values = new ArrayList<>();
            for (Object value : (Collection<?>) decode(buff).get("k")) {
                values.add(MISSING.equals(value) ? Missing.getInstance() : value);
            }
            return new KeyValue(values);
        }

        @Override
        public KeyValue[] createStorage(int size) {
            return new KeyValue[size];
        }
    }
}
